package api

import (
	"net/http"
	"strings"
	"time"
)

// Request metrics. Options.Observe hears of every request once answered:
// its route — the endpoint's pattern, ids left out ("GET /v1/cases/{id}");
// "other" for a path or method that matches none, so a client cannot mint
// label values — its status code and how long it took. No token label
// and no embassy: how often an embassy asks about its cases right after
// an alert is the kind of signal a metrics reader must not get (an
// embassy's own use is in the audit trail), and neither is needed to see
// that the API is healthy.

// RouteOther is the route label of a request that matched no endpoint.
const RouteOther = "other"

// Routes lists every route label Observe can be given, so a metrics
// backend can present each at 0 from the start.
func Routes() []string {
	out := []string{RouteOther}
	for _, rt := range routes {
		out = append(out, routeLabel(rt))
	}
	return out
}

func routeLabel(rt route) string {
	return rt.method + " " + Prefix + strings.Join(rt.pattern, "/")
}

// routeFor names r's endpoint for the metrics.
func routeFor(r *http.Request) string {
	rts, _ := match(r.URL.Path)
	for _, rt := range rts {
		if rt.method == r.Method {
			return routeLabel(rt)
		}
	}
	return RouteOther
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// observed serves r through serve and reports it to Options.Observe.
func (a *API) observed(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter, *http.Request)) {
	if a.opt.Observe == nil {
		serve(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	serve(sw, r)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	a.opt.Observe(routeFor(r), sw.code, time.Since(start))
}
