/*
 * Single-node OpenSearch for the es-biomed tests, started from the jars in target/lib.
 *
 * Run with Java's single-file source launcher (no compile step):
 *
 *   java -cp 'target/lib/*' Launcher.java --state DIR \
 *        [--plugin NAME=CLASS[:EXTENDED,...]]... [-Ekey=value]...
 *
 * Every --plugin becomes a classpath plugin of the node (a PluginInfo naming the plugin's main class);
 * EXTENDED lists the plugins whose extension points it implements (opensearch-knn=...:lang-painless
 * makes lang-painless load the k-NN painless functions such as cosineSimilarity).
 * Settings: the defaults below, then every -Ekey=value (later ones win).
 *
 * Once the node has started, the bound HTTP URL is written to DIR/url. SIGTERM/SIGINT close the node.
 */

import org.opensearch.Version;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.core.common.transport.TransportAddress;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.PluginInfo;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public class Launcher {

    /** A plain Node whose only addition is that it accepts plugins found on the class path. */
    static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment, Collection<PluginInfo> plugins) {
            super(environment, plugins, true);
        }
    }

    private static void usage(String message) {
        System.err.println("Launcher: " + message);
        System.err.println("usage: java -cp 'target/lib/*' Launcher.java --state DIR"
            + " [--plugin NAME=CLASS[:EXTENDED,...]]... [-Ekey=value]...");
        System.exit(2);
    }

    private static PluginInfo pluginInfo(String spec) {
        int eq = spec.indexOf('=');
        if (eq <= 0 || eq == spec.length() - 1) {
            usage("bad --plugin " + spec);
        }
        String name = spec.substring(0, eq);
        String rest = spec.substring(eq + 1);
        List<String> extended = Collections.emptyList();
        int colon = rest.indexOf(':');
        if (colon >= 0) {
            extended = Arrays.asList(rest.substring(colon + 1).split(","));
            rest = rest.substring(0, colon);
        }
        return new PluginInfo(name, "classpath plugin " + name, Version.CURRENT.toString(), Version.CURRENT,
            "21", rest, null, extended, false);
    }

    public static void main(String[] args) throws Exception {
        Path state = null;
        List<PluginInfo> plugins = new ArrayList<>();
        Map<String, String> overrides = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--state") && i + 1 < args.length) {
                state = Path.of(args[++i]).toAbsolutePath().normalize();
            } else if (a.equals("--plugin") && i + 1 < args.length) {
                plugins.add(pluginInfo(args[++i]));
            } else if (a.startsWith("-E") && a.indexOf('=') > 2) {
                overrides.put(a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
            } else {
                usage("unexpected argument " + a);
            }
        }
        if (state == null) {
            usage("--state is required");
        }
        Path config = state.resolve("config");
        Files.createDirectories(config);
        Files.createDirectories(state.resolve("data"));
        Files.createDirectories(state.resolve("logs"));
        Path urlFile = state.resolve("url");
        Files.deleteIfExists(urlFile);

        Settings.Builder builder = Settings.builder()
            .put("path.home", state.toString())
            .put("path.data", state.resolve("data").toString())
            .put("path.logs", state.resolve("logs").toString())
            .put("cluster.name", "es-biomed-test")
            .put("node.name", "es-biomed-test-node")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", "9400-9499")
            .put("transport.port", "9500-9599")
            // tests run on small or nearly full disks: never block allocation or writes on disk usage
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true);
        overrides.forEach(builder::put);
        Settings settings = builder.build();

        String nodeName = settings.get("node.name");
        // log4j2: one console appender (node.sh sends stdout to STATE/node.log), INFO, no JSON or rolling files
        Files.writeString(config.resolve("log4j2.properties"), String.join("\n",
            "status = error",
            "appender.console.type = Console",
            "appender.console.name = console",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %marker%m%n",
            "rootLogger.level = info",
            "rootLogger.appenderRef.console.ref = console",
            "logger.deprecation.name = org.opensearch.deprecation",
            "logger.deprecation.level = warn",
            "logger.merge.name = org.opensearch.index.MergeSchedulerConfig",
            "logger.merge.level = warn",
            ""), StandardCharsets.UTF_8);

        Environment environment = InternalSettingsPreparer.prepareEnvironment(settings, Collections.emptyMap(), config,
            () -> nodeName);
        LogConfigurator.setNodeName(nodeName);
        LogConfigurator.configure(environment);
        // The real server (Bootstrap) halts the JVM on any uncaught Error. Here only VM errors (out of memory,
        // ...) stop the node; others (e.g. the UnsatisfiedLinkError of a faiss index, see README) are logged and
        // leave the node up, so a test sees the failing request instead of a vanished node.
        Thread.setDefaultUncaughtExceptionHandler((thread, e) -> {
            System.err.println("Launcher: uncaught exception in thread [" + thread.getName() + "]");
            e.printStackTrace();
            System.err.flush();
            if (e instanceof VirtualMachineError) {
                Runtime.getRuntime().halt(1);
            }
        });

        final Node node;
        try {
            node = new ClasspathNode(environment, plugins);
        } catch (Throwable t) {
            System.err.println("Launcher: could not create the node");
            t.printStackTrace();
            System.err.flush();
            System.exit(1);
            return;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                Files.deleteIfExists(urlFile);
                node.close();
                if (node.awaitClose(20, TimeUnit.SECONDS) == false) {
                    System.err.println("Launcher: node did not close within 20 s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                System.out.println("Launcher: node stopped");
                System.out.flush();
                stopped.countDown();
            }
        }, "node-shutdown"));

        try {
            node.start();
        } catch (Throwable t) {
            System.err.println("Launcher: node failed to start");
            t.printStackTrace();
            System.err.flush();
            // the shutdown hook closes what was started
            System.exit(1);
        }

        TransportAddress http = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        String url = "http://" + http.getAddress() + ":" + http.getPort();
        Path tmp = state.resolve("url.tmp");
        Files.writeString(tmp, url + "\n", StandardCharsets.UTF_8);
        Files.move(tmp, urlFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.println("Launcher: node started at " + url + " (pid " + ProcessHandle.current().pid() + ")");
        System.out.flush();

        // the node's own threads may all be daemons: keep the JVM alive until the shutdown hook ran
        stopped.await();
    }
}
