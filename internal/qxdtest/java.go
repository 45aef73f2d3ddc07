package qxdtest

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The Apache Kafka Java client (kafka-clients, the reference client) for tests
// that run Java programs against a node.
//
// Maven Central is not one of the registries this project installs from, so the
// jar comes from an npm package that carries it: specmatic 1.0.0 (MIT) ships a
// self-contained specmatic.jar with kafka-clients 3.3.1 (Apache-2.0) and its
// runtime dependencies (lz4-java, snappy-java, zstd-jni, slf4j-api) inside, as
// classes at their own names. KafkaJava fetches that tarball once with `npm pack`,
// checks its SHA-256 against javaClientTarballSHA256, checks the version file
// kafka-clients keeps (kafka/kafka-version.properties), and copies just those
// libraries into kafka-clients-3.3.1.jar in the user's cache directory.

const (
	// javaClientPackage is the npm package whose tarball carries kafka-clients.
	javaClientPackage = "specmatic@1.0.0"
	// javaClientTarballSHA256 is the SHA-256 of that package's tarball.
	javaClientTarballSHA256 = "d417d4eb492344e96adb27e243fd49fda44f2d29775030837fbc0952e6e503cf"
	// javaClientVersion is the kafka/kafka-version.properties of kafka-clients
	// 3.3.1 as Apache Kafka released it.
	javaClientVersion = "commitId=e23c59d00e687ff5\nversion=3.3.1"
)

// javaClientEntries are the prefixes of the jar entries that make up
// kafka-clients and its runtime dependencies: Kafka's classes, message schemas and
// version file; lz4-java; snappy-java with its native libraries; zstd-jni with its
// Linux native libraries; slf4j-api with its no-op provider.
var javaClientEntries = []string{
	"org/apache/kafka/", "common/message/", "kafka/",
	"net/jpountz/",
	"org/xerial/snappy/",
	"com/github/luben/", "linux/amd64/libzstd-jni", "linux/aarch64/libzstd-jni",
	"org/slf4j/ILoggerFactory", "org/slf4j/IMarkerFactory", "org/slf4j/Logger", "org/slf4j/MDC",
	"org/slf4j/Marker", "org/slf4j/event/", "org/slf4j/helpers/", "org/slf4j/nop/", "org/slf4j/spi/",
	"META-INF/services/org.slf4j.spi.SLF4JServiceProvider",
}

var javaJar struct {
	sync.Once
	jar, skip string
	err       error
}

// KafkaJava returns a classpath of kafka-clients 3.3.1 and the compiled Java
// program src (a .java file, its class named as the file), fetching the jar the
// first time and compiling src with javac when this text of it has not been
// compiled before (the classes are kept in the user's cache directory by the
// source's hash). It skips t, saying what to install, when java, javac or npm
// is missing or the download fails.
func KafkaJava(t testing.TB, src string) string {
	t.Helper()
	javaJar.Do(func() {
		javaJar.jar, javaJar.skip, javaJar.err = installKafkaJava()
	})
	if javaJar.err != nil {
		t.Fatal(javaJar.err)
	}
	if javaJar.skip != "" {
		t.Skip(javaJar.skip)
	}
	classes, err := compileJava(javaJar.jar, src)
	if err != nil {
		t.Fatal(err)
	}
	return javaJar.jar + string(os.PathListSeparator) + classes
}

// installKafkaJava checks for java and javac and returns the path of the
// kafka-clients jar, fetching it if it is not in the cache yet; skip says why
// it cannot.
func installKafkaJava() (jar, skip string, err error) {
	for _, tool := range []string{"java", "javac"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", tool + " is not installed: apt-get install -y openjdk-17-jdk-headless (or run `just kafka-clients`)", nil
		}
	}
	dir := javaCacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	jar = filepath.Join(dir, "kafka-clients-3.3.1.jar")
	if _, err := os.Stat(jar); err == nil {
		return jar, "", nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", "npm is not installed, and kafka-clients comes from an npm package: apt-get install -y nodejs npm (or run `just kafka-clients`)", nil
	}
	cmd := exec.Command("npm", "pack", javaClientPackage, "--pack-destination", dir)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output() // the tarball's name, on the last line
	if err != nil {
		return "", fmt.Sprintf("npm pack %s into %s failed (no registry?): %v\n%s%s", javaClientPackage, dir, err, out, stderr.String()), nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	tarball := filepath.Join(dir, strings.TrimSpace(lines[len(lines)-1]))
	defer os.Remove(tarball)
	if err := extractKafkaClients(tarball, jar); err != nil {
		return "", "", err
	}
	return jar, "", nil
}

// javaCacheDir is where the jar and compiled programs are kept.
func javaCacheDir() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "qxd-java", javaClientTarballSHA256[:16])
}

// compileJava compiles src against jar into a directory named by the source's
// hash, unless that directory holds its class already, and returns it.
func compileJava(jar, src string) (string, error) {
	text, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	name := filepath.Base(src)
	class := strings.TrimSuffix(name, ".java") + ".class"
	sum := sha256.Sum256(text)
	dir := javaCacheDir()
	classes := filepath.Join(dir, "classes-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(classes, class)); err == nil {
		return classes, nil
	}
	tmp, err := os.MkdirTemp(dir, "classes-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, name), text, 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command("javac", "-cp", jar, "-d", tmp, filepath.Join(tmp, name)).CombinedOutput(); err != nil {
		return "", fmt.Errorf("javac %s: %v\n%s", src, err, out)
	}
	os.RemoveAll(classes)
	if err := os.Rename(tmp, classes); err != nil {
		return "", err
	}
	return classes, nil
}

// extractKafkaClients checks the tarball's SHA-256, finds package/specmatic.jar in
// it, and writes the entries of javaClientEntries to jar, after checking that the
// kafka-clients inside is the one pinned.
func extractKafkaClients(tarball, jar string) error {
	b, err := os.ReadFile(tarball)
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != javaClientTarballSHA256 {
		return fmt.Errorf("%s: SHA-256 %x, want %s: not the pinned %s", tarball, sum, javaClientTarballSHA256, javaClientPackage)
	}
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	fat := jar + ".specmatic"
	defer os.Remove(fat)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s: no package/specmatic.jar", tarball)
		}
		if err != nil {
			return err
		}
		if h.Name != "package/specmatic.jar" {
			continue
		}
		out, err := os.Create(fat)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		break
	}
	zr, err := zip.OpenReader(fat)
	if err != nil {
		return err
	}
	defer zr.Close()
	tmp := jar + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	zw := zip.NewWriter(out)
	version := ""
	for _, e := range zr.File {
		if strings.HasSuffix(e.Name, "/") || !slices.ContainsFunc(javaClientEntries, func(p string) bool { return strings.HasPrefix(e.Name, p) }) {
			continue
		}
		if e.Name == "kafka/kafka-version.properties" {
			r, err := e.Open()
			if err != nil {
				return err
			}
			v, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				return err
			}
			version = string(v)
		}
		if err := zw.Copy(e); err != nil {
			return err
		}
	}
	if version != javaClientVersion {
		return fmt.Errorf("%s: kafka/kafka-version.properties is %q, want %q", javaClientPackage, version, javaClientVersion)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, jar)
}
