package main

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statsCollector exports every package's Stats to Prometheus. The toolkit's
// Stats types all encode to JSON as plain counters with snake_case names, so
// one collector serves them all: each number becomes a metric named
// sharednothing_<component>_<field>, booleans 0 or 1; a list of objects
// (replicapin's per-server stats) becomes one series per element, labelled
// by its "name". Strings (errors, positions) are left out.
type statsCollector struct {
	sources map[string]func() any
}

// Describe sends nothing: the metrics follow the Stats structs, so the
// collector is unchecked.
func (c statsCollector) Describe(chan<- *prometheus.Desc) {}

// Collect reads every source's Stats once.
func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	names := make([]string, 0, len(c.sources))
	for n := range c.sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := json.Marshal(c.sources[n]())
		if err != nil {
			continue
		}
		var v any
		if json.Unmarshal(b, &v) == nil {
			e := emitter{ch: ch, seen: map[string]bool{}}
			e.emit("sharednothing_"+n, nil, v)
		}
	}
}

// emitter walks one decoded Stats value. A name met twice (replicapin's
// primary_reads and primary.reads) keeps its first value.
type emitter struct {
	ch   chan<- prometheus.Metric
	seen map[string]bool
}

func (e emitter) emit(name string, labels prometheus.Labels, v any) {
	switch v := v.(type) {
	case float64:
		e.send(name, labels, v)
	case bool:
		f := 0.0
		if v {
			f = 1
		}
		e.send(name, labels, f)
	case map[string]any:
		for k, x := range v {
			e.emit(name+"_"+sanitize(k), labels, x)
		}
	case []any:
		for _, x := range v {
			m, ok := x.(map[string]any)
			if !ok {
				continue
			}
			id, _ := m["name"].(string)
			if id == "" {
				continue
			}
			l := prometheus.Labels{"name": id}
			for k, lv := range labels {
				l[k] = lv
			}
			e.emit(name, l, m)
		}
	}
}

func (e emitter) send(name string, labels prometheus.Labels, v float64) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]string, len(keys))
	id := name
	for i, k := range keys {
		vals[i] = labels[k]
		id += "|" + k + "=" + vals[i]
	}
	if e.seen[id] {
		return
	}
	e.seen[id] = true
	desc := prometheus.NewDesc(name, "From the toolkit's Stats(); see the package documentation.", keys, nil)
	if m, err := prometheus.NewConstMetric(desc, prometheus.UntypedValue, v, vals...); err == nil {
		e.ch <- m
	}
}

// sanitize makes a JSON key a valid metric name part.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// metricsHandler serves /metrics: the toolkit's Stats plus the Go runtime's
// and the process's own metrics. Keep it off the public internet (a
// separate listener, or the load balancer refusing the path): counters say
// a lot about traffic.
func metricsHandler(sources map[string]func() any) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		statsCollector{sources: sources},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// statsSources names every component whose Stats /metrics exports.
func (a *app) statsSources() map[string]func() any {
	s := map[string]func() any{
		"session":    func() any { return a.sessions.Stats() },
		"replicapin": func() any { return a.pins.Stats() },
		"pages":      func() any { return a.cache.Stats() },
		"thumbnail":  func() any { return a.thumbs.Stats() },
		"logouts":    func() any { return a.logouts.Stats() },
		"summaries":  func() any { return a.summaryCache.Stats() },
	}
	if a.bus != nil {
		s["coherent"] = func() any { return a.bus.Stats() }
	}
	return s
}
