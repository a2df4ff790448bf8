// swift-tools-version:6.0
import PackageDescription

// Numeric targets are compiled with optimisation even in debug builds: an unoptimised
// tensor kernel is ~40x slower, which would make the test suite unusably slow.
let optimised: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"])]

let package = Package(
    name: "aqbert",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "aqbert", targets: ["aqbert"]),
        .library(name: "AQBert", targets: ["AQBert"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // fp32 GEMM: the system OpenBLAS (Debian libopenblas-dev).
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // MPI for scale-out: the system Open MPI (Debian libopenmpi-dev), with inline names for
        // the handles Open MPI defines as macros.
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        // Hot elementwise kernels in C, AVX2 paths chosen at run time.
        .target(
            name: "CAQKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]
        ),
        // Tensors, the autodiff tape, primitive ops and their VJPs, optimizers.
        .target(
            name: "AQCore",
            dependencies: ["COpenBLAS", "CAQKernels"],
            swiftSettings: optimised
        ),
        // The processes of a run: one, or the ranks of an MPI job (collectives, agreement on errors).
        .target(name: "AQParallel", dependencies: ["CMPI"]),
        // Layers and losses built from core ops.
        .target(name: "AQNN", dependencies: ["AQCore"], swiftSettings: optimised),
        // Atomic file writes (temporary file, fsync, rename) for every output.
        .target(name: "AQFiles"),
        // safetensors reading (memory-mapped) and writing.
        .target(name: "AQSafeTensors", dependencies: ["AQFiles"], swiftSettings: optimised),
        // WordPiece with BertTokenizerFast semantics.
        .target(name: "AQTokenizer", dependencies: ["AQFiles", "AQSafeTensors"], swiftSettings: optimised),
        // BERT config, model, heads, checkpoint name map.
        .target(
            name: "AQBert",
            dependencies: ["AQNN", "AQFiles", "AQSafeTensors", "AQTokenizer"],
            swiftSettings: optimised
        ),
        // Sub-group quantization: bit plans, fake-quant ops, quantized models.
        .target(name: "AQQuant", dependencies: ["AQBert", "AQSafeTensors", "CAQKernels"], swiftSettings: optimised),
        // The AQ-BERT super-network and bilevel search.
        .target(name: "AQSearch", dependencies: ["AQQuant"], swiftSettings: optimised),
        // Model resolution: a directory, the local Hugging Face cache, or a hub download.
        .target(name: "AQHub", dependencies: ["AQFiles"]),
        // Task readers, features, metrics and the trainer.
        .target(name: "AQTasks", dependencies: ["AQBert", "AQQuant", "AQSearch", "AQParallel"], swiftSettings: optimised),
        // The comparison of METHOD.md section 6 (seeds x budgets x methods, each step a run of
        // aqbert) and its results: the schema, the Markdown table, the pictures.
        .target(name: "AQExperiments", dependencies: ["AQTasks", "AQSearch", "AQQuant", "AQFiles"]),
        // What each command does, as library functions: a request of parsed options in, the
        // prepared run or its result out, warnings and progress through callbacks. The executable
        // parses arguments, calls one of these and prints.
        .target(
            name: "AQRuns",
            dependencies: ["AQBert", "AQQuant", "AQSearch", "AQTasks", "AQExperiments", "AQParallel", "AQHub", "AQFiles",
                           "AQSafeTensors", "AQTokenizer"]
        ),
        // The mutation fuzzer's targets (every parser of user files) and mutator.
        .target(name: "AQFuzz", dependencies: ["AQTasks"], swiftSettings: optimised),
        .executableTarget(
            name: "aqbert",
            dependencies: [
                "AQBert",
                "AQQuant",
                "AQSearch",
                "AQTasks",
                "AQExperiments",
                "AQRuns",
                "AQFuzz",
                "AQHub",
                "AQTokenizer",
                "AQFiles",
                "AQParallel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "AQCoreTests", dependencies: ["AQCore", "AQNN"], resources: [.copy("Fixtures")]),
        .testTarget(name: "AQTokenizerTests", dependencies: ["AQTokenizer"], resources: [.copy("Fixtures")]),
        .testTarget(name: "AQSafeTensorsTests", dependencies: ["AQSafeTensors"]),
        .testTarget(name: "AQHubTests", dependencies: ["AQHub"]),
        .testTarget(name: "AQQuantTests", dependencies: ["AQQuant", "AQSafeTensors"]),
        .testTarget(name: "AQSearchTests", dependencies: ["AQSearch"]),
        .testTarget(name: "AQTasksTests", dependencies: ["AQTasks"], resources: [.copy("Fixtures")]),
        .testTarget(name: "AQExperimentsTests", dependencies: ["AQExperiments"]),
        .testTarget(name: "AQRunsTests", dependencies: ["AQRuns", "AQBert", "AQQuant", "AQSearch", "AQTasks", "AQParallel"]),
        .testTarget(name: "AQFuzzTests", dependencies: ["AQFuzz"], exclude: ["Fixtures", "Regressions"]),
        // Runs the built executable: exit codes, one-line errors, output contracts.
        .testTarget(name: "AQBertCLITests", dependencies: ["aqbert", "AQBert", "AQTokenizer", "AQQuant", "AQSearch"]),
        .testTarget(
            name: "AQBertTests",
            dependencies: ["AQBert", "AQTokenizer"],
            resources: [.copy("Fixtures")]
        ),
    ],
    // Numeric code passes raw pointers between worker threads; the Swift 5 language mode keeps
    // Sendable checking as warnings for it.
    swiftLanguageModes: [.v5]
)
