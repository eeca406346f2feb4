#!/usr/bin/env python3
"""The S3 baseline of scripts/bench-storage.sh: the S3 server (moto) driven straight with boto3.

  create-bucket NAME...  creates buckets (the one our server uses, the one measured here)
  measure                put_object / get_object of one large object (best of --repeats), then
                         --small small put_objects from a pool of --threads threads

Human-readable figures go to stderr; `measure` prints one line on stdout for the script:
"<put MB/s> <get MB/s> <small puts/s>", MB = 2^20 bytes, best of the repeats.
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (anything works with moto).
"""
import argparse
import concurrent.futures
import os
import sys
import time

import boto3
from botocore.config import Config

MB = 1 << 20


def client(endpoint: str, threads: int):
    options = dict(s3={"addressing_style": "path"}, max_pool_connections=threads,
                   retries={"max_attempts": 1, "mode": "standard"})
    try:  # botocore >= 1.36: no CRC32 of every body, as our server does not compute one either
        config = Config(request_checksum_calculation="when_required",
                        response_checksum_validation="when_required", **options)
    except TypeError:
        config = Config(**options)
    return boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"), config=config)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def create_buckets(s3, names) -> None:
    for name in names:
        try:
            s3.create_bucket(Bucket=name)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass


def large(s3, bucket: str, size_mb: int, repeats: int):
    payload = os.urandom(size_mb * MB)
    puts, gets = [], []
    for i in range(repeats):
        key = f"large/{i}.bin"
        start = time.perf_counter()
        s3.put_object(Bucket=bucket, Key=key, Body=payload, ContentType="application/octet-stream")
        puts.append(size_mb / (time.perf_counter() - start))
        start = time.perf_counter()
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        count = sum(len(chunk) for chunk in body.iter_chunks(MB))
        gets.append(size_mb / (time.perf_counter() - start))
        if count != len(payload):
            raise SystemExit(f"get_object returned {count} bytes, expected {len(payload)}")
        log(f"  direct {size_mb} MB put_object {puts[-1]:.0f} MB/s, get_object {gets[-1]:.0f} MB/s")
    return max(puts), max(gets)


def small(s3, bucket: str, count: int, size_kb: int, threads: int):
    body = os.urandom(size_kb << 10)

    def put(key: str) -> float:
        start = time.perf_counter()
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
        return time.perf_counter() - start

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, [f"warmup/{i}" for i in range(threads)]))  # opens the connections, untimed
        start = time.perf_counter()
        latencies = sorted(pool.map(put, [f"small/{i}" for i in range(count)]))
        elapsed = time.perf_counter() - start
    rate = count / elapsed
    log(f"  direct {count} x {size_kb} KB put_object from {threads} threads in {elapsed:.2f} s = {rate:.0f} puts/s; "
        f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000:.1f} ms")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True, help="the S3 server, e.g. http://127.0.0.1:7143")
    parser.add_argument("--threads", type=int, default=32)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-bucket")
    create.add_argument("names", nargs="+")
    measure = commands.add_parser("measure")
    measure.add_argument("--bucket", default="direct-baseline")
    measure.add_argument("--large-mb", type=int, default=100)
    measure.add_argument("--repeats", type=int, default=3)
    measure.add_argument("--small", type=int, default=1000)
    measure.add_argument("--small-kb", type=int, default=10)
    args = parser.parse_args()

    s3 = client(args.endpoint, args.threads)
    if args.command == "create-bucket":
        create_buckets(s3, args.names)
        return
    create_buckets(s3, [args.bucket])
    put_rate, get_rate = large(s3, args.bucket, args.large_mb, args.repeats)
    puts_per_second = small(s3, args.bucket, args.small, args.small_kb, args.threads)
    print(f"{put_rate:.1f} {get_rate:.1f} {puts_per_second:.1f}")


if __name__ == "__main__":
    main()
