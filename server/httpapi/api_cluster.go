package httpapi

import (
	"net/http"

	"github.com/qxd-io/qxd"
)

// The console's cluster-wide views: recent cluster events and the bridges.

// events answers the recent JetStream cluster events this node received, newest
// first (at most maxEvents).
func (a *api) events(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.r.adv.events())
}

// BridgesView is the body of GET /api/bridges.
type BridgesView struct {
	// Runner is the node running the bridges ("" when none does now).
	Runner  string       `json:"runner"`
	Bridges []BridgeView `json:"bridges"`
}

// BridgeView is a bridge with its runner's report (nil while none answered).
type BridgeView struct {
	Bridge qxd.Bridge        `json:"bridge"`
	Status *qxd.BridgeStatus `json:"status"`
	// Error says why the report could not be read.
	Error string `json:"error,omitempty"`
}

// bridges lists the bridges with their status, as `qxd bridge list` and
// `qxd bridge describe` show them; it takes admin on every topic, as managing
// bridges does.
func (a *api) bridges(w http.ResponseWriter, req *http.Request) {
	if !allowed(w, who(req).clusterRight("list bridges")) {
		return
	}
	ctx, cancel := reqContext(req)
	defer cancel()
	bs, runner, err := a.cl.Admin().ListBridges(ctx)
	if err != nil {
		failService(w, err)
		return
	}
	out := BridgesView{Runner: runner, Bridges: []BridgeView{}}
	for _, b := range bs {
		v := BridgeView{Bridge: b}
		if d, err := a.cl.Admin().DescribeBridge(ctx, b.Name); err != nil {
			v.Error = err.Error()
		} else {
			v.Status = d.Status
		}
		out.Bridges = append(out.Bridges, v)
	}
	writeJSON(w, http.StatusOK, out)
}
