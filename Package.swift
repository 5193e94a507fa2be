// swift-tools-version:6.2
// Gossamer: config center and service discovery for microservices.
// The module map follows ../shared/DESIGN.md; docs/architecture.md tells how the code realises it.
import PackageDescription

/// Settings every Gossamer target compiles with: Swift 6 mode plus the upcoming features we rely on,
/// and warnings treated as errors so CI stays clean.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InferIsolatedConformances"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "gossamer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gossamer", targets: ["gossamer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
    ],
    targets: [
        // MARK: - C libraries
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),

        // MARK: - Domain modules
        .target(
            name: "Common",
            path: "Sources/Common",
            swiftSettings: strict
        ),
        .target(
            name: "GossipCore",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "Gossip",
            dependencies: [
                "GossipCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ConfigCenter",
            dependencies: [
                "Common",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "RedisCache",
            dependencies: [
                "CHiredis",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Registry",
            dependencies: [
                "ConfigCenter", "RedisCache",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "LoadBalancer",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "Proxy",
            dependencies: [
                "LoadBalancer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Monitor",
            dependencies: [
                "Common",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),

        // MARK: - Adapters and composition
        .target(
            name: "Server",
            dependencies: [
                "ConfigCenter", "Registry", "Monitor",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Agent",
            dependencies: [
                "ConfigCenter", "Server", "Gossip", "GossipCore", "Registry", "RedisCache", "LoadBalancer", "Proxy", "Monitor",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Client",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gossamer",
            dependencies: [
                "Agent", "Client", "ConfigCenter", "Gossip", "Monitor", "Registry", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // MARK: - Benchmarks
        .executableTarget(
            name: "PickerBench",
            dependencies: ["LoadBalancer", "TestSupport"],
            path: "Benchmarks/PickerBench",
            swiftSettings: strict
        ),

        .executableTarget(
            name: "SimBench",
            dependencies: ["TestSupport", "GossipCore"],
            path: "Benchmarks/SimBench",
            swiftSettings: strict
        ),

        .executableTarget(
            name: "AlertBench",
            dependencies: ["Monitor", .product(name: "Metrics", package: "swift-metrics")],
            path: "Benchmarks/AlertBench",
            swiftSettings: strict
        ),

        .executableTarget(
            name: "WebhookBench",
            dependencies: [
                "Monitor",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/WebhookBench",
            swiftSettings: strict
        ),

        .executableTarget(
            name: "RedisBench",
            dependencies: ["RedisCache"],
            path: "Benchmarks/RedisBench",
            swiftSettings: strict
        ),

        // MARK: - Test support and tests
        .target(
            name: "TestSupport",
            dependencies: ["GossipCore"],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "ConfigCenterTests",
            dependencies: ["ConfigCenter", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "ConfigCenter", "Registry", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: ["Agent", "ConfigCenter", "Server", "Gossip", "GossipCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GossipCoreTests",
            dependencies: ["GossipCore", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GossipTests",
            dependencies: ["Gossip", "GossipCore", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LoadBalancerTests",
            dependencies: ["LoadBalancer", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ProxyTests",
            dependencies: [
                "Proxy", "LoadBalancer", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RedisCacheTests",
            dependencies: ["RedisCache", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RegistryTests",
            dependencies: ["Registry", "ConfigCenter", "RedisCache", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(name: "CommonTests", dependencies: ["Common"], swiftSettings: strict),
        .testTarget(name: "MonitorTests", dependencies: ["Monitor", "TestSupport", .product(name: "Metrics", package: "swift-metrics")], swiftSettings: strict),
        .testTarget(
            name: "ProcessTests",
            dependencies: ["Client", "TestSupport", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
    ]
)
