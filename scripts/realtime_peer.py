"""The peer baseline for the realtime figures: python-socketio's own server (aiohttp, one process)
broadcasting in memory, speaking the same events as ours: `realtime:subscribe {channel}` joins a
room and acks, `realtime:publish {channel, event, payload}` emits `{...payload, meta}` to the room.
No database, no log, no policies: the cheapest a Socket.IO fan-out gets in Python."""

import argparse
import time
import uuid

import socketio
from aiohttp import web

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=7198)
args = parser.parse_args()

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", max_http_buffer_size=1_000_000)
app = web.Application()
sio.attach(app)


@sio.on("realtime:subscribe")
async def subscribe(sid, data):
    await sio.enter_room(sid, data["channel"])
    return {"ok": True, "channel": data["channel"], "presence": {"members": []}}


@sio.on("realtime:publish")
async def publish(sid, data):
    frame = dict(data.get("payload") or {})
    frame["meta"] = {"channel": data["channel"], "messageId": str(uuid.uuid4()), "senderType": "user",
                     "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    await sio.emit(data["event"], frame, room=data["channel"])
    return {"ok": True, "channel": data["channel"]}


web.run_app(app, host="127.0.0.1", port=args.port, print=None)
