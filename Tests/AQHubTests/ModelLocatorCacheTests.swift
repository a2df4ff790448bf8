import XCTest
@testable import AQHub

/// Local directories and the hub cache, built by hand in a temporary directory the way
/// huggingface_hub leaves it (refs, snapshots of relative symlinks into blobs). No network:
/// every locator here runs with `HF_HUB_OFFLINE=1` or an endpoint that must not be asked.
final class ModelLocatorCacheTests: XCTestCase {
    var root: URL!

    static let mainCommit = String(repeating: "a1", count: 20)
    static let tagCommit = String(repeating: "b2", count: 20)

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("aqhub-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// An environment that isolates the test from the real home and never reaches a network.
    func environment(_ extra: [String: String] = [:], offline: Bool = true) -> [String: String] {
        var env = ["HOME": root.appendingPathComponent("home").path,
                   "HF_HUB_CACHE": root.appendingPathComponent("hub").path,
                   "HF_ENDPOINT": "http://127.0.0.1:\(closedLocalPort())"]
        if offline { env["HF_HUB_OFFLINE"] = "1" }
        return env.merging(extra) { $1 }
    }

    var cache: URL { root.appendingPathComponent("hub") }

    static let bertFiles = ["config.json": "{\"model_type\": \"bert\"}", "vocab.txt": "[PAD]\n[UNK]\n",
                            "model.safetensors": "weights", "tokenizer_config.json": "{}"]

    func testLocalDirectoryIsUsedAsIs() throws {
        let dir = root.appendingPathComponent("my model")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: dir.appendingPathComponent("config.json"))
        let resolved = try ModelLocator(environment: environment()).resolve(dir.path)
        XCTAssertEqual(resolved.standardizedFileURL.path, dir.standardizedFileURL.path)
    }

    func testLocalPathErrors() throws {
        let locator = ModelLocator(environment: environment())
        let file = root.appendingPathComponent("config.json")
        try Data("{}".utf8).write(to: file)
        XCTAssertEqual(kind { try locator.resolve(file.path) }, .notADirectory)

        let empty = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let error = hubError { try locator.resolve(empty.path) }
        XCTAssertEqual(error?.kind, .missingConfig)
        XCTAssertTrue(error?.description.contains("config.json") ?? false)

        XCTAssertEqual(kind { try locator.resolve(root.appendingPathComponent("nope").path) }, .noSuchPath)
        XCTAssertEqual(kind { try locator.resolve("./nope") }, .noSuchPath)
        XCTAssertEqual(kind { try locator.resolve("a/b/c") }, .noSuchPath)
        XCTAssertEqual(kind { try locator.resolve("org/name@") }, .noSuchPath)
    }

    func testRefsMainResolvesToSnapshotOfSymlinks() throws {
        let snapshot = try makeCachedModel("google/bert-tiny", commit: Self.mainCommit, refs: ["main"])
        let resolved = try ModelLocator(environment: environment()).resolve("google/bert-tiny")
        XCTAssertEqual(resolved.path, snapshot.path)
        XCTAssertEqual(resolved.path, cache.path + "/models--google--bert-tiny/snapshots/\(Self.mainCommit)")
        XCTAssertEqual(try String(contentsOf: resolved.appendingPathComponent("vocab.txt"), encoding: .utf8), "[PAD]\n[UNK]\n")
    }

    func testRevisionsTagsAndCommitHashes() throws {
        try makeCachedModel("org/name", commit: Self.mainCommit, refs: ["main"])
        try makeCachedModel("org/name", commit: Self.tagCommit, refs: ["v1.0"])
        let locator = ModelLocator(environment: environment())
        XCTAssertEqual(try locator.resolve("org/name").lastPathComponent, Self.mainCommit)
        XCTAssertEqual(try locator.resolve("org/name@main").lastPathComponent, Self.mainCommit)
        XCTAssertEqual(try locator.resolve("org/name@v1.0").lastPathComponent, Self.tagCommit)
        // A full commit hash needs no ref.
        XCTAssertEqual(try locator.resolve("org/name@\(Self.tagCommit)").lastPathComponent, Self.tagCommit)
        let unknown = hubError { try locator.resolve("org/name@v2") }
        XCTAssertEqual(unknown?.kind, .notCachedOffline)
        XCTAssertTrue(unknown?.description.contains("\"v2\"") ?? false, unknown?.description ?? "")
    }

    func testSingleNameIdAndShardedSnapshot() throws {
        var files = Self.bertFiles
        files["model.safetensors"] = nil
        files["model.safetensors.index.json"] = #"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#
        files["model-00001-of-00002.safetensors"] = "one"
        try makeCachedModel("bert-base-uncased", commit: Self.mainCommit, refs: ["main"], files: files)
        let locator = ModelLocator(environment: environment())
        // One shard is missing: the snapshot is incomplete, and offline that is an error naming it.
        let error = hubError { try locator.resolve("bert-base-uncased") }
        XCTAssertEqual(error?.kind, .notCachedOffline)
        XCTAssertTrue(error?.description.contains("model-00002-of-00002.safetensors") ?? false, error?.description ?? "")

        let blob = cache.appendingPathComponent("models--bert-base-uncased/blobs/shard2")
        try Data("two".utf8).write(to: blob)
        try FileManager.default.createSymbolicLink(
            atPath: cache.path + "/models--bert-base-uncased/snapshots/\(Self.mainCommit)/model-00002-of-00002.safetensors",
            withDestinationPath: "../../blobs/shard2")
        XCTAssertEqual(try locator.resolve("bert-base-uncased").path,
                       cache.path + "/models--bert-base-uncased/snapshots/\(Self.mainCommit)")
    }

    func testDanglingSymlinkCountsAsMissing() throws {
        try makeCachedModel("org/name", commit: Self.mainCommit, refs: ["main"])
        let blobs = cache.appendingPathComponent("models--org--name/blobs")
        for blob in try FileManager.default.contentsOfDirectory(atPath: blobs.path) where blob.hasSuffix("weights") {
            try FileManager.default.removeItem(at: blobs.appendingPathComponent(blob))
        }
        let error = hubError { try ModelLocator(environment: environment()).resolve("org/name") }
        XCTAssertEqual(error?.kind, .notCachedOffline)
        XCTAssertTrue(error?.description.contains("lacks model.safetensors") ?? false, error?.description ?? "")
    }

    func testOfflineMissNamesTheIdAndTheCache() throws {
        let error = hubError { try ModelLocator(environment: environment()).resolve("org/absent") }
        XCTAssertEqual(error?.kind, .notCachedOffline)
        let text = error?.description ?? ""
        XCTAssertTrue(text.contains("\"org/absent\""), text)
        XCTAssertTrue(text.contains(cache.path), text)
        XCTAssertTrue(text.contains("HF_HUB_OFFLINE"), text)
        XCTAssertFalse(text.contains("\n"))
    }

    func testCompleteSnapshotIsUsedWithoutTheNetworkWhenOnline() throws {
        try makeCachedModel("org/name", commit: Self.mainCommit, refs: ["main"])
        // Online, with an endpoint where nothing listens: the cache answers before any request.
        let resolved = try ModelLocator(environment: environment(offline: false)).resolve("org/name")
        XCTAssertEqual(resolved.lastPathComponent, Self.mainCommit)
    }

    func testCacheDirectoryPrecedence() {
        let home = "/h"
        func cacheDir(_ env: [String: String]) -> String {
            ModelLocator(environment: ["HOME": home].merging(env) { $1 }).cacheDirectory.path
        }
        XCTAssertEqual(cacheDir([:]), "/h/.cache/huggingface/hub")
        XCTAssertEqual(cacheDir(["XDG_CACHE_HOME": "/x"]), "/x/huggingface/hub")
        XCTAssertEqual(cacheDir(["XDG_CACHE_HOME": "/x", "HF_HOME": "/hf"]), "/hf/hub")
        XCTAssertEqual(cacheDir(["HF_HOME": "~/hf"]), "/h/hf/hub")
        XCTAssertEqual(cacheDir(["HF_HOME": "/hf", "HF_HUB_CACHE": "/c"]), "/c")
        XCTAssertEqual(cacheDir(["HF_HOME": "/hf", "HUGGINGFACE_HUB_CACHE": "/old"]), "/old")
        XCTAssertEqual(cacheDir(["HF_HUB_CACHE": "/c", "HUGGINGFACE_HUB_CACHE": "/old"]), "/c")
        XCTAssertEqual(cacheDir(["HF_HOME": ""]), "/h/.cache/huggingface/hub")
    }

    func testEnvironmentSwitches() throws {
        XCTAssertTrue(ModelLocator(environment: ["HF_HUB_OFFLINE": "1"]).isOffline)
        XCTAssertTrue(ModelLocator(environment: ["HF_HUB_OFFLINE": "true"]).isOffline)
        XCTAssertTrue(ModelLocator(environment: ["TRANSFORMERS_OFFLINE": "YES"]).isOffline)
        XCTAssertFalse(ModelLocator(environment: ["HF_HUB_OFFLINE": "0"]).isOffline)
        XCTAssertEqual(ModelLocator(environment: [:]).endpoint, "https://huggingface.co")
        XCTAssertEqual(ModelLocator(environment: ["HF_ENDPOINT": "https://hf-mirror.com/"]).endpoint, "https://hf-mirror.com")
        // HF_TOKEN wins over the login file, which is read from HF_HOME.
        let hfHome = root.appendingPathComponent("hfhome")
        try FileManager.default.createDirectory(at: hfHome, withIntermediateDirectories: true)
        try Data("hf_file\n".utf8).write(to: hfHome.appendingPathComponent("token"))
        XCTAssertEqual(HubSettings(environment: ["HF_HOME": hfHome.path]).token, "hf_file")
        XCTAssertEqual(HubSettings(environment: ["HF_HOME": hfHome.path, "HF_TOKEN": "hf_env"]).token, "hf_env")
        XCTAssertNil(HubSettings(environment: ["HOME": root.path]).token)
    }

    func testModelIdValidation() {
        XCTAssertEqual(HubModelID("bert-base-uncased"), HubModelID("bert-base-uncased@main"))
        XCTAssertEqual(HubModelID("org/name@refs/pr/1")?.revision, "refs/pr/1")
        for bad in ["", "a/b/c", "org//name", "-org/name", "org/name.", "org--x/name", "a/../b", "org/na me", "org/name@", "org/name@../x"] {
            XCTAssertNil(HubModelID(bad), bad)
        }
    }

    func testErrorsAreOneLine() {
        let error = HubError(.noSuchPath, "bad\nname")
        XCTAssertFalse(error.description.contains("\n"))
        XCTAssertEqual(quoted("a\"b"), "\"a\\\"b\"")
    }

    // MARK: helpers

    /// A repository as huggingface_hub leaves it: blobs named by etag, a snapshot of relative
    /// symlinks `../../blobs/<etag>`, and `refs/<name>` holding the commit without a newline.
    @discardableResult
    func makeCachedModel(_ id: String, commit: String, refs: [String], files: [String: String] = bertFiles) throws -> URL {
        let repo = cache.appendingPathComponent("models--" + id.replacingOccurrences(of: "/", with: "--"))
        let snapshot = repo.appendingPathComponent("snapshots/\(commit)")
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        for (name, text) in files {
            let etag = commit.prefix(8) + "-" + name.replacingOccurrences(of: ".", with: "-")
                + (name == "model.safetensors" ? "-weights" : "")
            try Data(text.utf8).write(to: repo.appendingPathComponent("blobs/\(etag)"))
            try FileManager.default.createSymbolicLink(atPath: snapshot.appendingPathComponent(name).path,
                                                       withDestinationPath: "../../blobs/\(etag)")
        }
        for ref in refs {
            try Data(commit.utf8).write(to: repo.appendingPathComponent("refs/\(ref)"))
        }
        return snapshot
    }
}

func hubError(_ body: () throws -> Any) -> HubError? {
    do {
        _ = try body()
        return nil
    } catch let error as HubError {
        return error
    } catch {
        XCTFail("not a HubError: \(error)")
        return nil
    }
}

func kind(_ body: () throws -> Any) -> HubError.Kind? { hubError(body)?.kind }
