//go:build browser

package httpapi_test

// The console in a real browser: headless Chromium (Debian's chromium package,
// installed by `just browser`) driven with chromedp. Screenshots of each page go
// to testdata/out/ (ignored by git), or to $QXD_SCREENSHOTS.

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server/httpapi"
)

// browser starts headless Chromium for the test and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("QXD_CHROMIUM")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("no chromium on PATH: run `just browser`, which installs Debian's chromium, or set QXD_CHROMIUM to a Chromium binary")
		}
	}
	var out strings.Builder
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("ignore-certificate-errors", true), // the secured node's test CA
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&out),
	)
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		if t.Failed() && out.Len() > 0 {
			t.Logf("chromium said:\n%s", out.String())
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// screenshot saves the whole page as name.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("QXD_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("testdata", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// setHeaders sends headers with every request of the tab.
func setHeaders(h network.Headers) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
		return err
	})
}

// setJS runs a JavaScript statement on the page.
func setJS(stmt string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool]("("+stmt+", true)")(ctx, t)
		return err
	})
}

// waitJS waits until the JavaScript expression is true on the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		var page string
		page, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %s not true within 60s: %v\npage:\n%s", what, expr, err, page)
	}
}

func text(sel string) string {
	return fmt.Sprintf(`document.querySelector(%q).innerText`, sel)
}

func TestConsoleInBrowser(t *testing.T) {
	base, c := consoleNode(t, httpapi.Service{})
	ctx := browser(t)
	qctx := qxdtest.Context(t, 3*time.Minute)

	// A group that read everything and committed 4 of 10: lag 6.
	cons := qxdtest.NewConsumer(t, c, qxd.Group("billing"), qxd.AutoCommit(0))
	if err := cons.Subscribe(qctx, "orders"); err != nil {
		t.Fatal(err)
	}
	for read := 0; read < 10; {
		rs, err := cons.Poll(qctx)
		if err != nil {
			t.Fatal(err)
		}
		read += len(rs)
	}
	commit := func(off int64) {
		if err := cons.CommitOffsets(qctx, map[qxd.TopicPartition]int64{{Topic: "orders", Partition: 0}: off}); err != nil {
			t.Fatal(err)
		}
	}
	commit(4)

	t.Run("cluster", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#cluster")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the cluster page lists node test, up", text("#nodes tbody")+`.includes("test") && `+text("#nodes tbody")+`.includes("up")`)
		waitJS(t, ctx, "the header names the node and its sync mode", text("#node")+`.includes("sync always")`)
		screenshot(t, ctx, "cluster")
	})

	t.Run("topics", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#topics")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the topics page lists orders", text("#topics tbody")+`.includes("orders")`)
		if err := chromedp.Do(ctx,
			chromedp.SetValue("#create-name", "browsed"),
			chromedp.SetValue("#create-partitions", "3"),
			chromedp.SetValue("#create-config", "retention=2d"),
			chromedp.Click("#create-submit"),
		); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the new topic is listed and shown", text("#topics tbody")+`.includes("browsed") && `+text("#topic-title")+`.includes("browsed") && document.querySelectorAll("#partitions tbody tr").length === 3`)
		ti, err := c.Admin().Topic(qctx, "browsed")
		if err != nil || ti.Config.Partitions != 3 || ti.Config.Retention != 48*time.Hour {
			t.Fatalf("topic created through the form: %+v %v, want 3 partitions, retention 2 days", ti.Config, err)
		}
		// A bad name is refused with the service's error, and nothing is created.
		if err := chromedp.Do(ctx, chromedp.SetValue("#create-name", "bad name!"), chromedp.Click("#create-submit")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the refused create says why", text("#status")+`.includes("create topic") && `+text("#status")+`.includes("bad name!")`)
		screenshot(t, ctx, "topics")
		if ts, err := c.Admin().ListTopics(qctx); err != nil || len(ts) != 2 {
			t.Errorf("topics after the refused create: %d %v, want 2", len(ts), err)
		}
	})

	t.Run("records", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#records")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the topic list is loaded", `[...document.querySelectorAll("#browse-topic option")].some(o => o.value === "orders")`)
		if err := chromedp.Do(ctx,
			chromedp.SetValue("#browse-topic", "orders"),
			chromedp.SetValue("#browse-offset", "3"),
			chromedp.SetValue("#browse-limit", "7"),
			chromedp.Click("#browse-submit"),
		); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "records 3 to 9 shown, JSON pretty-printed, binary as base64",
			`document.querySelectorAll("#records tbody tr").length === 7 && `+text("#records tbody")+`.includes('"n": 3') && `+
				text("#records tbody")+`.includes("AAEC/w==") && `+text("#records tbody")+`.includes("plain text")`)
		screenshot(t, ctx, "records")
		// From a time: record 5 was stamped t0+5s.
		if err := chromedp.Do(ctx,
			setJS(`document.getElementById("browse-offset").value = ""`),
			chromedp.SetValue("#browse-time", t0.Add(5*time.Second).Format(time.RFC3339)),
			chromedp.SetValue("#browse-limit", "50"),
			chromedp.Click("#browse-submit"),
		); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "records 5 to 9 shown from the time of record 5",
			`document.querySelectorAll("#records tbody tr").length === 5 && document.querySelector("#records tbody tr td").innerText === "5"`)
		screenshot(t, ctx, "records-from-time")
	})

	t.Run("groups", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#groups")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the groups page lists billing", text("#groups tbody")+`.includes("billing")`)
		if err := chromedp.Do(ctx, chromedp.Click("#groups tbody tr")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "billing's lag is 6", text("#lag-total")+` === "(total 6)"`)
		screenshot(t, ctx, "groups-lag-6")
		// The group commits on: the page shows the lag fall without a reload.
		commit(10)
		waitJS(t, ctx, "billing's lag fell to 0", text("#lag-total")+` === "(total 0)"`)
		screenshot(t, ctx, "groups-lag-0")
		// While the group has a member, seeking is not offered.
		waitJS(t, ctx, "no seek while billing has a member", `document.getElementById("seek-form").hidden && `+text("#seek-note")+`.includes("empty")`)
		// Its member leaves: the page offers the seek, which goes back to the start.
		if err := cons.Close(qctx); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the seek form once billing is empty", `!document.getElementById("seek-form").hidden && `+text("#group-summary")+`.includes("Empty")`)
		if err := chromedp.Do(ctx,
			chromedp.SetValue("#seek-topic", "orders"),
			chromedp.SetValue("#seek-to", "start"),
			chromedp.Click("#seek-submit"),
		); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "billing's lag is 10 after the seek to the start", text("#lag-total")+` === "(total 10)" && `+text("#seek-result")+`.includes("orders/0: 10 -> 0")`)
		screenshot(t, ctx, "groups-seek")
		d, err := c.Admin().DescribeGroup(qctx, "billing")
		if err != nil || len(d.Partitions) != 1 || d.Partitions[0].Committed != 0 {
			t.Errorf("billing after the console's seek: %+v %v, want committed 0", d, err)
		}
	})

	t.Run("bridges", func(t *testing.T) {
		if _, err := c.Admin().CreateBridge(qctx, qxd.IngestBridge("sensors", "sensors.>", "orders", "token:2")); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#bridges")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the bridges page lists sensors, run by node test", text("#bridges tbody")+`.includes("sensors") && `+text("#bridges tbody")+`.includes("sensors.>") && `+text("#bridges-summary")+`.includes("node test")`)
		screenshot(t, ctx, "bridges")
	})

	t.Run("events", func(t *testing.T) {
		cfgs := qxdtest.ClusterConfigs(t, 3)
		addr := qxdtest.FreeAddr(t)
		cfgs[0].Services = append(cfgs[0].Services, httpapi.Service{Listen: addr})
		nodes := qxdtest.StartCluster(t, cfgs)
		cc := qxdtest.Connect(t, nodes[0])
		qxdtest.CreateTopic(t, cc, "replicated", qxd.TopicConfig{Partitions: 3, Replicas: 3})
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/#events")); err != nil {
			t.Fatal(err)
		}
		if err := nodes[2].Close(qctx); err != nil {
			t.Fatal(err)
		}
		// The page refreshes itself: the election that follows n3's stop appears.
		waitJS(t, ctx, "a partition of replicated elected a leader", text("#events tbody")+`.includes("leader elected") && `+text("#events tbody")+`.includes("replicated/")`)
		screenshot(t, ctx, "events")
	})

	t.Run("secured", func(t *testing.T) {
		sbase, _, sc := securedConsole(t)
		// The page is opened as a user would after the browser's sign-in prompt:
		// every request carries the user's basic credentials.
		signIn := func(user string) {
			t.Helper()
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+user+"-pw"))
			if err := chromedp.Do(ctx, setHeaders(network.Headers{"Authorization": auth})); err != nil {
				t.Fatal(err)
			}
		}
		signIn("viewer")
		if err := chromedp.Do(ctx, chromedp.Navigate(sbase+"/#topics")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "viewer sees orders, and no create form", text("#topics tbody")+`.includes("orders") && document.getElementById("create-form").hidden && `+
			`!document.getElementById("readonly").hidden && `+text("#node")+`.includes("user viewer")`)
		if err := chromedp.Do(ctx, chromedp.Click("#topics tbody tr")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "viewer's topic page has no delete button and says why",
			text("#topic-title")+`.includes("orders") && document.getElementById("delete-form").hidden && `+text("#topic-readonly")+`.includes("no admin right on topic orders")`)
		screenshot(t, ctx, "topics-viewer")
		// Asked all the same, the node refuses viewer's delete.
		msg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/api/topics/orders", {method: "DELETE"}).then(r => r.json()).then(b => b.code + ": " + b.error)`,
			chromedp.EvalAwaitPromise))
		if err != nil || !strings.HasPrefix(msg, "TOPIC_AUTHORIZATION_FAILED") || !strings.Contains(msg, `user "viewer" has no admin right on topic "orders"`) {
			t.Errorf("DELETE from the page as viewer: %q %v, want TOPIC_AUTHORIZATION_FAILED naming viewer and orders", msg, err)
		}
		if _, err := sc.Admin().Topic(qctx, "orders"); err != nil {
			t.Errorf("orders after viewer's refused delete: %v", err)
		}
		// ops, with admin rights, deletes it through the form.
		signIn("ops")
		if err := chromedp.Do(ctx, chromedp.Navigate(sbase+"/#topics"), chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "ops sees the create form", text("#topics tbody")+`.includes("orders") && !document.getElementById("create-form").hidden && `+text("#node")+`.includes("user ops")`)
		if err := chromedp.Do(ctx, chromedp.Click("#topics tbody tr")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "ops' topic page has the delete button", `!document.getElementById("delete-form").hidden && document.getElementById("topic-readonly").hidden`)
		screenshot(t, ctx, "topics-ops")
		if err := chromedp.Do(ctx, setJS(`window.confirm = () => true`), chromedp.Click("#delete-submit")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "orders is gone", `!`+text("#topics tbody")+`.includes("orders")`)
		if _, err := sc.Admin().Topic(qctx, "orders"); err == nil {
			t.Error("orders still exists after ops deleted it from the console")
		}
		if err := chromedp.Do(ctx, setHeaders(network.Headers{})); err != nil {
			t.Fatal(err)
		}
	})
}
