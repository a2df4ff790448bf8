import XCTest
@testable import AQHub

/// Downloads from `FakeHubServer`, a hub on 127.0.0.1 written with POSIX sockets, into a
/// temporary cache; checks the layout against what huggingface_hub writes.
final class ModelLocatorDownloadTests: XCTestCase {
    var root: URL!
    var server: FakeHubServer!

    static let commit = "0123456789abcdef0123456789abcdef01234567"
    static let configETag = String(repeating: "c", count: 40)
    static let vocabETag = String(repeating: "d", count: 40)
    static let tokenizerConfigETag = String(repeating: "f", count: 40)
    static let weightsSHA = String(repeating: "9a", count: 32)
    static let weights: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    static func tinyRepo(id: String = "org/tiny") -> FakeRepo {
        FakeRepo(id: id, commit: commit, files: [
            "config.json": .init(bytes: Array(#"{"model_type": "bert"}"#.utf8), lfs: false, etag: configETag),
            "vocab.txt": .init(bytes: Array("[PAD]\n[UNK]\n[CLS]\n[SEP]\n".utf8), lfs: false, etag: vocabETag),
            "tokenizer_config.json": .init(bytes: Array("{}".utf8), lfs: false, etag: tokenizerConfigETag),
            "model.safetensors": .init(bytes: weights, lfs: true, etag: weightsSHA),
        ])
    }

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("aqhub-dl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        server = try FakeHubServer()
    }

    override func tearDownWithError() throws {
        server.stop()
        try? FileManager.default.removeItem(at: root)
    }

    var cache: URL { root.appendingPathComponent("hub") }

    func locator(_ extra: [String: String] = [:]) -> ModelLocator {
        let env = ["HOME": root.path, "HF_HOME": root.appendingPathComponent("hf").path,
                   "HF_HUB_CACHE": cache.path, "HF_ENDPOINT": server.baseURL]
        return ModelLocator(environment: env.merging(extra) { $1 })
    }

    func testDownloadWritesTheHuggingFaceLayoutAndIsThenServedFromCache() throws {
        server.add(Self.tinyRepo())
        var reports: [DownloadProgress] = []
        let resolved = try locator().resolve("org/tiny") { reports.append($0) }

        let repo = cache.appendingPathComponent("models--org--tiny")
        XCTAssertEqual(resolved.path, repo.path + "/snapshots/\(Self.commit)")
        XCTAssertEqual(try Data(contentsOf: repo.appendingPathComponent("refs/main")), Data(Self.commit.utf8))
        let expected: [(String, String, [UInt8])] = [
            ("config.json", Self.configETag, Self.tinyRepo().files["config.json"]!.bytes),
            ("vocab.txt", Self.vocabETag, Self.tinyRepo().files["vocab.txt"]!.bytes),
            ("tokenizer_config.json", Self.tokenizerConfigETag, Array("{}".utf8)),
            ("model.safetensors", Self.weightsSHA, Self.weights),
        ]
        for (name, etag, bytes) in expected {
            let pointer = resolved.appendingPathComponent(name)
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: pointer.path), "../../blobs/\(etag)", name)
            XCTAssertEqual(try Data(contentsOf: pointer), Data(bytes), name)
        }
        // 404s are remembered as huggingface_hub remembers them.
        for name in ["tokenizer.json", "special_tokens_map.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: repo.path + "/.no_exist/\(Self.commit)/\(name)"), name)
        }
        let blobs = try FileManager.default.contentsOfDirectory(atPath: repo.path + "/blobs").sorted()
        XCTAssertEqual(blobs, [Self.weightsSHA, Self.configETag, Self.vocabETag, Self.tokenizerConfigETag].sorted())
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache.path + "/.locks/models--org--tiny/\(Self.weightsSHA).lock"))

        // The commit is pinned after the first answer; the weights come from the CDN location.
        let paths = server.requests.map { "\($0.method) \($0.path)" }
        XCTAssertEqual(paths.first, "HEAD /org/tiny/resolve/main/config.json")
        XCTAssertTrue(paths.contains("HEAD /org/tiny/resolve/\(Self.commit)/model.safetensors"), "\(paths)")
        XCTAssertTrue(paths.contains("GET /blob/\(Self.weightsSHA)"), "\(paths)")

        let weightReports = reports.filter { $0.file == "model.safetensors" }
        XCTAssertEqual(weightReports.first?.bytesReceived, 0)
        XCTAssertEqual(weightReports.last, DownloadProgress(file: "model.safetensors", bytesReceived: Int64(Self.weights.count),
                                                            bytesExpected: Int64(Self.weights.count), isFinished: true))
        XCTAssertTrue(weightReports.last?.bar().contains("100%") ?? false)

        // The hub is gone: the same id, and its commit hash, come from the cache without a request.
        server.stop()
        var late: [DownloadProgress] = []
        XCTAssertEqual(try locator().resolve("org/tiny") { late.append($0) }, resolved)
        XCTAssertEqual(try locator(["HF_HUB_OFFLINE": "1"]).resolve("org/tiny@\(Self.commit)"), resolved)
        XCTAssertTrue(late.isEmpty)
    }

    func testShardedGatedModelSendsTheTokenOnlyToTheHub() throws {
        let shard1: [UInt8] = Array(repeating: 1, count: 5000)
        let shard2: [UInt8] = Array(repeating: 2, count: 7000)
        var repo = Self.tinyRepo(id: "org/gated")
        repo.token = "hf_secret"
        repo.files["model.safetensors"] = nil
        repo.files["model.safetensors.index.json"] = .init(
            bytes: Array(#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}"#.utf8),
            lfs: false, etag: String(repeating: "1", count: 40))
        repo.files["model-00001-of-00002.safetensors"] = .init(bytes: shard1, lfs: true, etag: String(repeating: "a", count: 64))
        repo.files["model-00002-of-00002.safetensors"] = .init(bytes: shard2, lfs: true, etag: String(repeating: "b", count: 64))
        server.add(repo)
        // The CDN under another host name: huggingface_hub drops the token for it.
        server.cdnBaseURL = "http://localhost:\(server.port)"

        let denied = hubError { try locator().resolve("org/gated") }
        XCTAssertEqual(denied?.kind, .accessDenied)
        XCTAssertTrue(denied?.description.contains("HF_TOKEN") ?? false, denied?.description ?? "")
        XCTAssertTrue(denied?.description.contains("gated") ?? false, denied?.description ?? "")

        let resolved = try locator(["HF_TOKEN": "hf_secret"]).resolve("org/gated")
        XCTAssertEqual(try Data(contentsOf: resolved.appendingPathComponent("model-00001-of-00002.safetensors")), Data(shard1))
        XCTAssertEqual(try Data(contentsOf: resolved.appendingPathComponent("model-00002-of-00002.safetensors")), Data(shard2))
        XCTAssertTrue(ModelFiles.missing(in: resolved).isEmpty)
        let requests = server.requests.filter { $0.headers["authorization"] != nil || $0.method == "GET" }
        for request in requests {
            if request.path.hasPrefix("/blob/") {
                XCTAssertEqual(request.headers["host"], "localhost:\(server.port)")
                XCTAssertNil(request.headers["authorization"], request.path)
            } else {
                XCTAssertEqual(request.headers["authorization"], "Bearer hf_secret", request.path)
            }
        }
        XCTAssertEqual(server.requests.filter { $0.path.hasPrefix("/blob/") }.count, 2)
    }

    func testHubErrorsSayWhatToDo() throws {
        var noVocab = Self.tinyRepo(id: "org/novocab")
        noVocab.files["vocab.txt"] = nil
        var noWeights = Self.tinyRepo(id: "org/noweights")
        noWeights.files["model.safetensors"] = nil
        server.add(Self.tinyRepo())
        server.add(noVocab)
        server.add(noWeights)

        let anonymous = hubError { try locator().resolve("org/absent") }
        XCTAssertEqual(anonymous?.kind, .accessDenied)  // the hub hides unknown repos behind a 401
        let loggedIn = hubError { try locator(["HF_TOKEN": "x"]).resolve("org/absent") }
        XCTAssertEqual(loggedIn?.kind, .notFound)
        XCTAssertTrue(loggedIn?.description.contains("check the model id") ?? false, loggedIn?.description ?? "")
        let revision = hubError { try locator().resolve("org/tiny@v9") }
        XCTAssertEqual(revision?.kind, .notFound)
        XCTAssertTrue(revision?.description.contains("\"v9\"") ?? false, revision?.description ?? "")
        let vocab = hubError { try locator().resolve("org/novocab") }
        XCTAssertEqual(vocab?.kind, .missingFile)
        XCTAssertTrue(vocab?.description.contains("vocab.txt") ?? false, vocab?.description ?? "")
        let weights = hubError { try locator().resolve("org/noweights") }
        XCTAssertEqual(weights?.kind, .missingFile)
        XCTAssertTrue(weights?.description.contains("safetensors") ?? false, weights?.description ?? "")
        for error in [anonymous, loggedIn, revision, vocab, weights] {
            XCTAssertFalse(error?.description.contains("\n") ?? true)
        }
    }

    func testInterruptedTransferLeavesNoCompleteFileAndResumes() throws {
        server.add(Self.tinyRepo())
        server.truncateBlobs(after: 1000, times: HubDownload.attempts)
        let error = hubError { try locator().resolve("org/tiny") }
        XCTAssertEqual(error?.kind, .interrupted, error?.description ?? "")
        XCTAssertTrue(error?.description.contains("run again to resume") ?? false, error?.description ?? "")

        let repo = cache.appendingPathComponent("models--org--tiny")
        let blob = repo.appendingPathComponent("blobs/\(Self.weightsSHA)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: blob.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: repo.path + "/snapshots/\(Self.commit)/model.safetensors"))
        let partial = try FileManager.default.attributesOfItem(atPath: blob.path + ".incomplete")[.size] as? Int
        XCTAssertEqual(partial, 1000 * HubDownload.attempts)  // each attempt resumed the previous one
        XCTAssertEqual(kind { try locator(["HF_HUB_OFFLINE": "1"]).resolve("org/tiny") }, .notCachedOffline)

        // The next run resumes from the partial file and completes it.
        let resolved = try locator().resolve("org/tiny")
        XCTAssertEqual(try Data(contentsOf: resolved.appendingPathComponent("model.safetensors")), Data(Self.weights))
        XCTAssertFalse(FileManager.default.fileExists(atPath: blob.path + ".incomplete"))
        let ranges = server.requests.compactMap { $0.headers["range"] }
        XCTAssertEqual(ranges, ["bytes=1000-", "bytes=2000-", "bytes=3000-"])
    }

    func testAServerThatIsNoHubIsReportedAsSuch() throws {
        server.beNoHub()
        let error = hubError { try locator().resolve("org/tiny") }
        XCTAssertEqual(error?.kind, .notFound)
        XCTAssertTrue(error?.description.contains("HF_ENDPOINT") ?? false, error?.description ?? "")
    }

    func testOfflineModeNeverAsksTheHub() throws {
        server.add(Self.tinyRepo())
        let error = hubError { try locator(["HF_HUB_OFFLINE": "1"]).resolve("org/tiny") }
        XCTAssertEqual(error?.kind, .notCachedOffline)
        XCTAssertTrue(error?.description.contains(cache.path) ?? false)
        XCTAssertTrue(server.requests.isEmpty)
    }

    func testUnreachableHubFailsFastWithAdvice() throws {
        let start = Date()
        let error = hubError {
            try locator(["HF_ENDPOINT": "http://127.0.0.1:\(closedLocalPort())"]).resolve("org/tiny")
        }
        XCTAssertEqual(error?.kind, .unreachable)
        XCTAssertTrue(error?.description.contains("HF_HUB_OFFLINE=1") ?? false, error?.description ?? "")
        XCTAssertTrue(error?.description.contains("local model directory") ?? false)
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
    }

    func testSilentHubTimesOut() throws {
        server.beSilent()
        let start = Date()
        let error = hubError { try locator(["HF_HUB_ETAG_TIMEOUT": "1"]).resolve("org/tiny") }
        XCTAssertEqual(error?.kind, .unreachable)
        XCTAssertTrue(error?.description.contains("timed out") ?? false, error?.description ?? "")
        XCTAssertLessThan(Date().timeIntervalSince(start), 4)
    }
}
