import AQFiles
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One model repository in the Hugging Face hub cache, laid out exactly as `huggingface_hub`
/// (`file_download.py`, `hf_hub_download` / `try_to_load_from_cache`) lays it out, so that
/// transformers finds what we download and we find what it downloaded:
///
///     <cache>/models--org--name/
///         refs/main                      the commit hash `main` pointed to (no newline)
///         blobs/<etag>                   file contents, named by the git sha1 or LFS sha256
///         blobs/<etag>.incomplete        a partial download (appended to when resuming)
///         snapshots/<commit>/<file>      relative symlink -> ../../blobs/<etag>
///         .no_exist/<commit>/<file>      empty: the hub answered 404 for this file
///     <cache>/.locks/models--org--name/<etag>.lock   flock(2)ed while a blob is written
struct CachedRepo {
    let cache: URL
    let id: String
    /// `models--org--name` (`repo_folder_name`: "/" becomes "--").
    let folderName: String
    let root: URL

    init(cache: URL, id: String) {
        self.cache = cache
        self.id = id
        folderName = (["models"] + id.split(separator: "/").map(String.init)).joined(separator: "--")
        root = cache.appendingPathComponent(folderName, isDirectory: true)
    }

    var blobs: URL { root.appendingPathComponent("blobs", isDirectory: true) }

    func snapshot(_ commit: String) -> URL {
        root.appendingPathComponent("snapshots", isDirectory: true).appendingPathComponent(commit, isDirectory: true)
    }

    func pointer(commit: String, file: String) -> URL { snapshot(commit).appendingPathComponent(file) }

    func blob(etag: String) -> URL { blobs.appendingPathComponent(etag) }

    func lock(etag: String) -> URL {
        cache.appendingPathComponent(".locks", isDirectory: true)
            .appendingPathComponent(folderName, isDirectory: true)
            .appendingPathComponent(etag + ".lock")
    }

    private func refFile(_ revision: String) -> URL {
        root.appendingPathComponent("refs", isDirectory: true).appendingPathComponent(revision)
    }

    private func noExistFile(commit: String, file: String) -> URL {
        root.appendingPathComponent(".no_exist", isDirectory: true)
            .appendingPathComponent(commit, isDirectory: true).appendingPathComponent(file)
    }

    /// The commit a revision names in the cache: a full commit hash is itself (as in
    /// `REGEX_COMMIT_HASH`), a branch or tag is looked up in `refs/`.
    func commit(for revision: String) -> String? {
        if isCommitHash(revision) { return revision }
        guard let text = try? String(contentsOf: refFile(revision), encoding: .utf8) else { return nil }
        let hash = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return hash.isEmpty ? nil : hash
    }

    /// `_cache_commit_hash_for_specific_revision`: records `revision -> commit` unless the revision
    /// is the commit itself, rewriting only on change (the cache may be read-only when unchanged).
    func recordRef(revision: String, commit: String) throws {
        guard revision != commit, self.commit(for: revision) != commit else { return }
        let file = refFile(revision)
        try createDirectory(file.deletingLastPathComponent())
        try writeAtomically(Data(commit.utf8), to: file)
    }

    /// Remembers a 404 as huggingface_hub does, so neither library asks again for this commit.
    /// Best effort, like `_get_metadata_or_catch_error`: a read-only cache only loses the hint.
    func recordMissing(commit: String, file: String) {
        let marker = noExistFile(commit: commit, file: file)
        try? FileManager.default.createDirectory(at: marker.deletingLastPathComponent(),
                                                 withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: marker.path) {
            _ = FileManager.default.createFile(atPath: marker.path, contents: Data())
        }
    }

    func isRecordedMissing(commit: String, file: String) -> Bool {
        FileManager.default.fileExists(atPath: noExistFile(commit: commit, file: file).path)
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative symlink (as
    /// `_create_symlink` does, so the cache survives being moved). The link is made under a
    /// temporary name and renamed over the pointer, so a reader never sees a half-made pointer.
    func link(commit: String, file: String, etag: String) throws {
        let pointer = self.pointer(commit: commit, file: file)
        try createDirectory(pointer.deletingLastPathComponent())
        // snapshots/<commit>/a/b -> ../../../blobs/<etag>: one ".." per directory below the repo root.
        let depth = 2 + file.split(separator: "/").count - 1
        let target = String(repeating: "../", count: depth) + "blobs/" + etag
        let temporary = pointer.deletingLastPathComponent()
            .appendingPathComponent(".\(pointer.lastPathComponent).\(UUID().uuidString).link")
        guard symlink(target, temporary.path) == 0 else {
            throw HubError(.cacheWrite, "cannot create the symlink \(pointer.path) in the Hugging Face cache: \(errnoMessage(errno))")
        }
        guard rename(temporary.path, pointer.path) == 0 else {
            let code = errno
            unlink(temporary.path)
            throw HubError(.cacheWrite, "cannot create \(pointer.path) in the Hugging Face cache: \(errnoMessage(code))")
        }
    }
}

/// A full 40-hex-digit lowercase commit hash (`REGEX_COMMIT_HASH = ^[0-9a-f]{40}$`).
func isCommitHash(_ s: String) -> Bool {
    s.utf8.count == 40 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
}

func createDirectory(_ url: URL) throws {
    do {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    } catch {
        throw HubError(.cacheWrite, "cannot create the directory \(url.path): \(systemMessage(error))")
    }
}

/// Writes a small file atomically (`AQFiles.writeAtomically`), as a `HubError`.
func writeAtomically(_ data: Data, to url: URL) throws {
    do {
        try AQFiles.writeAtomically(data, toPath: url.path)
    } catch let e as FileWriteError {
        throw HubError(.cacheWrite, e.description)
    }
}

/// An exclusive flock(2) on a lock file: the lock `filelock.UnixFileLock` takes, so a Python
/// process writing the same blob and this one wait for each other.
final class FileLock {
    private let fd: Int32

    init(_ url: URL) throws {
        try createDirectory(url.deletingLastPathComponent())
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw HubError(.cacheWrite, "cannot open the lock file \(url.path): \(errnoMessage(errno))")
        }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let code = errno
            close(fd)
            throw HubError(.cacheWrite, "cannot lock \(url.path): \(errnoMessage(code))")
        }
    }

    deinit {
        _ = flock(fd, LOCK_UN)
        close(fd)
    }
}

/// The short reason of a Foundation error (its localized description without a trailing period).
func systemMessage(_ error: Error) -> String {
    var text = (error as NSError).localizedDescription
    if text.hasSuffix(".") { text.removeLast() }
    return text
}
