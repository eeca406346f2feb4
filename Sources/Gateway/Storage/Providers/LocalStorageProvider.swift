import Actors
import _NIOFileSystem
import Foundation
import Hummingbird
import NIOCore
import NIOPosix

/// Objects in a local folder (`STORAGE_DIR`): the bytes of each upload in `<root>/<bucket>/<key>@<version>`
/// (a file next to the key's siblings, so that an upload creates one inode, not a folder too).
///
/// A new file is created unnamed (`O_TMPFILE`) and linked under its name only once complete, so a
/// crash or a rejected upload never leaves a partial file anywhere, not even a temporary one.
struct LocalStorageProvider: StorageProvider {
    let root: String

    init(root: String) throws {
        let absolute = URL(fileURLWithPath: root).standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: absolute, withIntermediateDirectories: true)
        self.root = absolute
    }

    var name: String { "local" }

    /// The file of `blob`. Names are checked before they get here; this is the second line of defence.
    func filePath(_ blob: BlobLocation) throws -> String {
        guard StorageNames.bucketProblem(blob.bucket) == nil, StorageNames.keyProblem(blob.key) == nil else {
            throw StorageProviderError(message: "invalid object location")
        }
        return root + "/" + Self.relativePath(blob)
    }

    static func relativePath(_ blob: BlobLocation) -> String {
        "\(blob.bucket)/\(blob.key)@\(blob.version.uuidString.lowercased())"
    }

    /// The blob a file under the root holds (nil: not one of ours).
    static func blob(atRelativePath path: String) -> BlobLocation? {
        guard let slash = path.firstIndex(of: "/"), let at = path.lastIndex(of: "@"), at > slash,
              let version = UUID(uuidString: String(path[path.index(after: at)...])) else { return nil }
        let key = String(path[path.index(after: slash)..<at])
        guard !key.isEmpty else { return nil }
        return BlobLocation(bucket: String(path[..<slash]), key: key, version: version)
    }

    func writer(for blob: BlobLocation, contentType: String, size: Int64?) async throws -> any BlobWriter {
        LocalBlobWriter(path: try filePath(blob))
    }

    /// Opens an unnamed file that becomes `path` when closed with its changes made visible.
    static func openUnnamed(_ path: String) async throws -> WriteFileHandle {
        // The folder usually exists: open first, and make the folder only when it does not (twice at
        // most, as a delete pruning empty folders may remove a new one in between).
        for attempt in 1...3 {
            do {
                return try await FileSystem.shared.openFile(
                    forWritingAt: FilePath(path), options: .newFile(replaceExisting: false, permissions: [.ownerReadWrite, .groupRead]))
            } catch let error as FileSystemError where error.code == .notFound && attempt < 3 {
                try await FileSystem.shared.createDirectory(at: FilePath(folder(of: path)), withIntermediateDirectories: true, permissions: nil)
            }
        }
        throw StorageProviderError(message: "could not create \(path)")
    }

    static func folder(of path: String) -> String { String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]) }

    /// Writes a whole (small) file in one blocking call, as `openUnnamed` + write + close would in
    /// three trips to the thread pool: an unnamed file (`O_TMPFILE`) in the folder, linked under
    /// `path` once every byte is written. False when the filesystem cannot make unnamed files.
    static func writeWhole(_ bytes: ByteBuffer, to path: String) throws -> Bool {
        let folder = folder(of: path)
        func makeFolder() throws { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        var fd: Int32 = -1
        for attempt in 1...3 {
            fd = open(folder, unnamedFileFlags | O_WRONLY | O_CLOEXEC, 0o640)
            if fd >= 0 { break }
            let code = errno
            if code == ENOENT && attempt < 3 { try makeFolder(); continue }
            if code == EOPNOTSUPP || code == EISDIR || code == EINVAL { return false }
            throw LocalFileError(code: code, operation: "open", path: folder)
        }
        defer { close(fd) }
        try bytes.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw LocalFileError(code: errno, operation: "write", path: path)
                }
                offset += written
            }
        }
        // On disk before it has a name: an acknowledged upload survives a power cut.
        if fsync(fd) != 0 { throw LocalFileError(code: errno, operation: "fsync", path: path) }
        // Through /proc (no privilege needed); a folder pruned since the open is made again.
        func link() -> Int32 { linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno }
        var code = link()
        if code == ENOENT && !FileManager.default.fileExists(atPath: folder) {
            try makeFolder()
            code = link()
        }
        if code == ENOENT && linkat(fd, "", AT_FDCWD, path, 0x1000 /* AT_EMPTY_PATH */) == 0 { code = 0 }
        if code != 0 { throw LocalFileError(code: code, operation: "link", path: path) }
        try syncFolder(folder)
        return true
    }

    /// fsyncs a folder, so that a name made in it (a link, a rename) is on disk too.
    static func syncFolder(_ folder: String) throws {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw LocalFileError(code: errno, operation: "open", path: folder) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw LocalFileError(code: errno, operation: "fsync", path: folder) }
    }

    /// `O_TMPFILE` (a macro Swift does not import): `__O_TMPFILE | O_DIRECTORY`.
    private static let unnamedFileFlags: Int32 = 0o20000000 | O_DIRECTORY

    func read(_ blob: BlobLocation, range: ClosedRange<Int64>?) async throws -> ResponseBody {
        let path = FilePath(try filePath(blob))
        // Opened here, so that a missing file is an error before the response starts.
        let handle = try await FileSystem.shared.openFile(forReadingAt: path, options: .init())
        let span: Range<Int64>? = range.map { $0.lowerBound..<($0.upperBound + 1) }
        return ResponseBody { writer in
            do {
                let chunks = span.map { handle.readChunks(in: $0, chunkLength: .kibibytes(256)) }
                    ?? handle.readChunks(chunkLength: .kibibytes(256))
                for try await chunk in chunks { try await writer.write(chunk) }
                try await handle.close()
            } catch {
                try? await handle.close()
                throw error
            }
            try await writer.finish(nil)
        }
    }

    func delete(_ blobs: [BlobLocation]) async throws {
        for blob in blobs {
            let path = try filePath(blob)
            try await FileSystem.shared.removeItem(at: FilePath(path), strategy: .platformDefault, recursively: false)
            pruneFolders(above: path)
        }
    }

    /// Removes the folders of a removed file that are now empty, up to the root (rmdir refuses a non-empty one).
    private func pruneFolders(above path: String) {
        var folder = path
        while let slash = folder.lastIndex(of: "/") {
            folder = String(folder[..<slash])
            guard folder.count > root.count, folder.hasPrefix(root + "/") else { return }
            guard rmdir(folder) == 0 else { return }
        }
    }

    func blobs(writtenBefore before: Date) async throws -> [BlobLocation] {
        let root = self.root
        return await Task.detached {
            var found: [BlobLocation] = []
            guard let walk = FileManager.default.enumerator(at: URL(fileURLWithPath: root),
                                                           includingPropertiesForKeys: [.isRegularFileKey, .contentModificationDateKey])
            else { return [] }
            let prefix = root.hasSuffix("/") ? root : root + "/"
            for case let url as URL in walk {
                let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .contentModificationDateKey])
                guard values?.isRegularFile == true, let modified = values?.contentModificationDate, modified < before,
                      url.path.hasPrefix(prefix), let blob = Self.blob(atRelativePath: String(url.path.dropFirst(prefix.count)))
                else { continue }
                found.append(blob)
            }
            return found
        }.value
    }

    /// Unfinished local uploads are unnamed files: they vanish with their process.
    func abortIncompleteUploads(startedBefore before: Date) async throws -> Int { 0 }

    func info(_ blob: BlobLocation) async throws -> BlobInfo? {
        guard let info = try await FileSystem.shared.info(forFileAt: FilePath(try filePath(blob)), infoAboutSymbolicLink: false)
        else { return nil }
        return BlobInfo(size: info.size, etag: nil, contentType: nil, lastModified: nil)
    }

    func head(_ blob: BlobLocation, bytes: Int) async throws -> [UInt8] {
        try await FileSystem.shared.withFileHandle(forReadingAt: FilePath(try filePath(blob))) { handle in
            var buffer = try await handle.readToEnd(fromAbsoluteOffset: 0, maximumSizeAllowed: .bytes(Int64(bytes)))
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        }
    }

    // Downloads and uploads of this provider always go through the API.
    func downloadURL(_ blob: BlobLocation, fileName: String, expiresIn: Int) -> String? { nil }
    func presignedPost(_ blob: BlobLocation, contentType: String, maxSize: Int64, expiresIn: Int) -> PresignedPost? { nil }
    func pendingUploads(bucket: String, key: String) async throws -> [BlobLocation] { [] }
}

/// Writes one upload into an unnamed file, in 1 MiB writes; `commit` links it under its name. A file
/// that never reaches 1 MiB is written in one go at `commit`, without opening anything before.
final class LocalBlobWriter: BlobWriter {
    private let path: String
    private var handle: WriteFileHandle?
    private var pending = ByteBuffer()
    private var offset: Int64 = 0
    private static let flushSize = 1 << 20

    init(path: String) { self.path = path }

    func write(_ buffer: ByteBuffer) async throws {
        if pending.readableBytes == 0 && buffer.readableBytes >= Self.flushSize {
            try await openedHandle().write(contentsOf: buffer, toAbsoluteOffset: offset)
            offset += Int64(buffer.readableBytes)
            return
        }
        var buffer = buffer
        pending.writeBuffer(&buffer)
        if pending.readableBytes >= Self.flushSize { try await flush() }
    }

    private func openedHandle() async throws -> WriteFileHandle {
        if let handle { return handle }
        let opened = try await LocalStorageProvider.openUnnamed(path)
        handle = opened
        return opened
    }

    private func flush() async throws {
        guard pending.readableBytes > 0 else { return }
        try await openedHandle().write(contentsOf: pending, toAbsoluteOffset: offset)
        offset += Int64(pending.readableBytes)
        pending.clear()
    }

    func commit() async throws {
        if handle == nil {
            let (bytes, path) = (pending, path)
            if try await NIOThreadPool.singleton.runIfActive({ try LocalStorageProvider.writeWhole(bytes, to: path) }) { return }
        }
        try await flush()
        let opened = try await openedHandle()
        try await opened.synchronize()
        try await opened.close(makeChangesVisible: true)
        handle = nil
        let folder = LocalStorageProvider.folder(of: path)
        try await NIOThreadPool.singleton.runIfActive { try LocalStorageProvider.syncFolder(folder) }
    }

    func abort() async {
        try? await handle?.close(makeChangesVisible: false)
        handle = nil
    }
}

/// A system call on the storage folder failed.
struct LocalFileError: Error, CustomStringConvertible {
    var code: Int32
    var operation: String
    var path: String
    var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
}
