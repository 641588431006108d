/*
 * Single-node Elasticsearch 9 for the es-biomed tests, built only from the jars that
 * Maven Central serves (server + transport-netty4).  node.sh compiles it once with javac into
 * target/launcher and runs, in effect:
 *
 *   java --module-path target/lib --add-modules ALL-MODULE-PATH,jdk.incubator.vector \
 *       -Des.netty.dir=target/modules/transport-netty4 -cp target/launcher Launcher STATE_DIR [key=value ...]
 *
 * Java's single-file source launcher works as well (`java --module-path ... Launcher.java STATE_DIR`),
 * it only spends ~4 s compiling on each start.  The Launcher class lives in the unnamed module and
 * uses only packages that org.elasticsearch.server exports.
 *
 * What it does, in the order the real bootstrap (org.elasticsearch.bootstrap.Elasticsearch) would:
 *   1. lays out STATE_DIR as an ES home: config/ (log4j2.properties), data/, logs/,
 *      modules/transport-netty4/ (the netty jars plus the plugin descriptor that the
 *      transport-netty4 jar carries under META-INF/es-plugins/);
 *   2. configures ES logging (console appender; node.sh sends it to logs/launcher.log);
 *   3. builds the Environment from Settings and loads modules/ with the public PluginsLoader
 *      (the netty module becomes its own module layer, exactly like in a distribution);
 *   4. constructs org.elasticsearch.node.Node, registers GET / and HEAD / (RootHandler below:
 *      they live in the rest-root module, which Central does not serve, and the clients'
 *      info() needs them), starts the node, writes the bound HTTP URL to STATE_DIR/url and
 *      waits; a shutdown hook closes the node on SIGTERM/SIGINT.
 *
 * Entitlements: deliberately not initialised.  They exist only once the bootstrap calls
 * EntitlementBootstrap.bootstrap(...), which self-attaches the entitlement agent jar from
 * ${es.path.home}/lib/entitlement-agent (not on Maven Central) to instrument the JDK.  We never
 * call it, so no check is instrumented and nothing is enforced.  The same bootstrap
 * steps we skip also hold the "can not run elasticsearch as root" check, the seccomp
 * sandbox, JarHell over the whole module path and the production bootstrap checks.
 */

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.bytes.BytesArray;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.rest.RestChannel;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

public class Launcher {

    static final String CLUSTER_NAME = "es-biomed-test-es";
    static final String NETTY_MODULE = "transport-netty4";

    static final String LOG4J2 = String.join(
        "\n",
        "status = error",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%consoleException%n",
        "rootLogger.level = ${sys:es.test.log.level:-info}",
        "rootLogger.appenderRef.console.ref = console",
        // quieten the chatty bits
        "logger.deprecation.name = org.elasticsearch.deprecation",
        "logger.deprecation.level = error",
        ""
    );

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable t) {
            // exit even if some node threads (non-daemon) were already started
            System.err.println("es-biomed launcher: start-up failed");
            t.printStackTrace();
            System.exit(1);
        }
    }

    static void run(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Launcher STATE_DIR [setting=value ...]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath().normalize();
        Path nettyDir = Path.of(System.getProperty("es.netty.dir", "target/modules/" + NETTY_MODULE)).toAbsolutePath().normalize();

        Path config = home.resolve("config");
        Path data = home.resolve("data");
        Path logs = home.resolve("logs");
        Path tmp = home.resolve("tmp");
        for (Path p : new Path[] { config, data, logs, tmp }) {
            Files.createDirectories(p);
        }
        Files.deleteIfExists(home.resolve("url"));
        prepareNativeLibs(home);
        Files.writeString(config.resolve("log4j2.properties"), LOG4J2, StandardCharsets.UTF_8);
        prepareNettyModule(nettyDir, home.resolve("modules").resolve(NETTY_MODULE));

        Settings.Builder sb = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.toString())
            .put("path.logs", logs.toString())
            .put("cluster.name", CLUSTER_NAME)
            .put("node.name", CLUSTER_NAME + "-node")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", "9500-9599")
            .put("transport.port", "9600-9699")
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.destructive_requires_name", true); // the default; stated so nobody flips it by accident
        for (int i = 1; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected setting=value, got [" + args[i] + "]");
            }
            sb.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Settings input = sb.build();

        LogConfigurator.registerErrorListener();
        LogConfigurator.configureESLogging(); // x-content's provider lookup logs before logging is configured
        Environment env = InternalSettingsPreparer.prepareEnvironment(input, Map.of(), config, () -> CLUSTER_NAME + "-node");
        LogConfigurator.setClusterName(CLUSTER_NAME);
        LogConfigurator.setNodeName(env.settings().get("node.name"));
        LogConfigurator.configure(env, true);

        PluginsLoader pluginsLoader = PluginsLoader.createPluginsLoader(
            PluginsLoader.loadModulesBundles(env.modulesDir(), false),
            PluginsLoader.loadPluginsBundles(env.pluginsDir(), false),
            Map.of()
        );

        long t0 = System.nanoTime();
        Node node = new Node(env, pluginsLoader);
        // GET / and HEAD / live in the rest-root module, which Maven Central does not serve.
        node.injector()
            .getInstance(RestController.class)
            .registerHandler(new RootHandler(node.injector().getInstance(ClusterService.class), env.settings().get("node.name")));
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.prepareForClose();
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "es-biomed-launcher-shutdown"));

        node.start();
        InetSocketAddress http = node.injector()
            .getInstance(HttpServerTransport.class)
            .boundAddress()
            .publishAddress()
            .address();
        String url = "http://" + http.getHostString() + ":" + http.getPort();
        Path tmpUrl = home.resolve("url.tmp");
        Files.writeString(tmpUrl, url + "\n", StandardCharsets.UTF_8);
        Files.move(tmpUrl, home.resolve("url"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.printf("es-biomed launcher: node started in %d ms at %s%n", (System.nanoTime() - t0) / 1_000_000, url);

        closed.await(); // keep main alive; the node's own threads are non-daemon anyway
    }

    /**
     * The native-access layer looks for its libraries in ${es.path.home}/lib/platform/linux-x64
     * (es.nativelibs.path overrides).  Without the property it fails with an NPE and disables
     * native access altogether.  The distribution ships libzstd and libvec there; Maven Central
     * does not.  We point it at HOME/lib/platform/... and link the system libzstd (Debian
     * libzstd1) when there is one, so the zstd stored-fields codec (index.codec: best_compression)
     * works; libvec (SIMD vector scoring) stays missing and ES falls back to Lucene's Panama code.
     */
    static void prepareNativeLibs(Path home) throws IOException {
        if (System.getProperty("es.path.home") == null) {
            System.setProperty("es.path.home", home.toString());
        }
        Path platform = home.resolve("lib").resolve("platform").resolve("linux-x64");
        Files.createDirectories(platform);
        Path zstd = platform.resolve("libzstd.so");
        if (Files.exists(zstd, java.nio.file.LinkOption.NOFOLLOW_LINKS) == false) {
            for (String c : new String[] { "/usr/lib/x86_64-linux-gnu/libzstd.so.1", "/lib/x86_64-linux-gnu/libzstd.so.1", "/usr/lib64/libzstd.so.1" }) {
                if (Files.exists(Path.of(c))) {
                    Files.createSymbolicLink(zstd, Path.of(c));
                    break;
                }
            }
        }
    }

    /** Stand-in for the rest-root module's RestMainAction: the body the clients' info() expects. */
    static final class RootHandler implements RestHandler {
        private final ClusterService clusterService;
        private final String nodeName;

        RootHandler(ClusterService clusterService, String nodeName) {
            this.clusterService = clusterService;
            this.nodeName = nodeName;
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        public void handleRequest(RestRequest request, RestChannel channel, NodeClient client) throws Exception {
            if (request.method() == RestRequest.Method.HEAD) {
                channel.sendResponse(new RestResponse(RestStatus.OK, RestResponse.TEXT_CONTENT_TYPE, BytesArray.EMPTY));
                return;
            }
            Build build = Build.current();
            XContentBuilder b = channel.newBuilder();
            b.startObject();
            b.field("name", nodeName);
            b.field("cluster_name", clusterService.getClusterName().value());
            b.field("cluster_uuid", clusterService.state().metadata().clusterUUID());
            b.startObject("version");
            b.field("number", build.qualifiedVersion());
            b.field("build_flavor", build.flavor());
            b.field("build_type", build.type().displayName());
            b.field("build_hash", build.hash());
            b.field("build_date", build.date());
            b.field("build_snapshot", build.isSnapshot());
            b.field("lucene_version", org.apache.lucene.util.Version.LATEST.toString());
            b.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
            b.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
            b.endObject();
            b.field("tagline", "You Know, for Search");
            b.endObject();
            channel.sendResponse(new RestResponse(RestStatus.OK, b));
        }
    }

    /** Mirrors the netty jars into HOME/modules/transport-netty4 and adds the plugin descriptor. */
    static void prepareNettyModule(Path src, Path dst) throws IOException {
        if (Files.isDirectory(src) == false) {
            throw new IllegalStateException("transport-netty4 jars not found at " + src + " (run node.sh, or mvn generate-resources)");
        }
        Files.createDirectories(dst);
        try (DirectoryStream<Path> old = Files.newDirectoryStream(dst)) {
            for (Path p : old) {
                Files.delete(p);
            }
        }
        Path pluginJar = null;
        try (DirectoryStream<Path> jars = Files.newDirectoryStream(src, "*.jar")) {
            for (Path jar : jars) {
                Files.copy(jar, dst.resolve(jar.getFileName()));
                if (jar.getFileName().toString().startsWith(NETTY_MODULE + "-")) {
                    pluginJar = jar;
                }
            }
        }
        if (pluginJar == null) {
            throw new IllegalStateException("no " + NETTY_MODULE + "-*.jar in " + src);
        }
        String entry = "META-INF/es-plugins/" + NETTY_MODULE + "/plugin-descriptor.properties";
        try (ZipFile zip = new ZipFile(pluginJar.toFile())) {
            ZipEntry e = zip.getEntry(entry);
            if (e == null) {
                throw new IllegalStateException(pluginJar + " has no " + entry);
            }
            try (InputStream in = zip.getInputStream(e)) {
                Files.copy(in, dst.resolve("plugin-descriptor.properties"));
            }
        }
    }
}
