package hook

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve runs h behind a real server wrapped in a Writer whose hook sets a
// header and counts its calls, and returns the response.
func serve(t *testing.T, h func(w http.ResponseWriter, r *http.Request), before func(w *Writer, status int) int) (*http.Response, string, int) {
	t.Helper()
	calls := 0
	var logs bytes.Buffer
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hw *Writer
		hw = New(w, func(status int) int {
			calls++
			hw.Header().Set("X-Hook", "ran")
			if before != nil {
				return before(hw, status)
			}
			return status
		})
		h(hw, r)
		hw.Done()
	}))
	srv.Config.ErrorLog = log.New(&logs, "", 0)
	srv.Start()
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	srv.Close()
	if strings.Contains(logs.String(), "superfluous") {
		t.Errorf("server logged %q", logs.String())
	}
	return res, string(body), calls
}

func TestHookRunsOnce(t *testing.T) {
	tests := []struct {
		name       string
		h          func(w http.ResponseWriter, r *http.Request)
		wantStatus int
		wantBody   string
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, 200, ""},
		{"write only", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }, 200, "hi"},
		{"header then write", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			io.WriteString(w, "made")
		}, 201, "made"},
		{"double WriteHeader", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(202)
			w.WriteHeader(500)
			io.WriteString(w, "x")
		}, 202, "x"},
		{"ReadFrom", func(w http.ResponseWriter, r *http.Request) {
			w.(io.ReaderFrom).ReadFrom(strings.NewReader("copied"))
		}, 200, "copied"},
		{"Flusher assertion", func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			io.WriteString(w, "after")
		}, 200, "after"},
		{"ResponseController flush", func(w http.ResponseWriter, r *http.Request) {
			if err := http.NewResponseController(w).Flush(); err != nil {
				panic(err)
			}
			io.WriteString(w, "rc")
		}, 200, "rc"},
		{"1xx passes through", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(204)
		}, 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body, calls := serve(t, tt.h, nil)
			if calls != 1 {
				t.Errorf("hook ran %d times, want 1", calls)
			}
			if res.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if body != tt.wantBody {
				t.Errorf("got body %q, want %q", body, tt.wantBody)
			}
			if res.Header.Get("X-Hook") != "ran" {
				t.Error("header set in hook did not reach the client")
			}
		})
	}
}

func TestHookCanFailTheResponse(t *testing.T) {
	res, body, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secret success body")
	}, func(w *Writer, status int) int {
		w.DiscardBody()
		return http.StatusInternalServerError
	})
	if res.StatusCode != 500 {
		t.Errorf("got status %d, want 500", res.StatusCode)
	}
	if body != "" {
		t.Errorf("got body %q, want it discarded", body)
	}
}

func TestFlushSendsHeadersBeforeHandlerReturns(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := New(w, func(s int) int { w.Header().Set("X-Hook", "ran"); return s })
		io.WriteString(hw, "part1")
		http.NewResponseController(hw).Flush()
		<-release
		io.WriteString(hw, "part2")
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	// Headers and the first part arrived while the handler is still blocked.
	buf := make([]byte, 5)
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "part1" {
		t.Fatalf("got %q, %v; want part1 streamed", buf, err)
	}
	if res.Header.Get("X-Hook") != "ran" {
		t.Error("hook header missing on streamed response")
	}
	close(release)
	rest, _ := io.ReadAll(res.Body)
	if string(rest) != "part2" {
		t.Errorf("got %q, want part2", rest)
	}
}

func TestHijack(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := New(w, func(s int) int { calls++; return s })
		c, brw, err := http.NewResponseController(hw).Hijack()
		if err != nil {
			t.Errorf("hijack via ResponseController: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		brw.Flush()
		hw.Done() // must not write on the hijacked connection
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "hijacked" {
		t.Errorf("got %q, want hijacked", body)
	}
	if calls != 0 {
		t.Errorf("hook ran %d times on a hijacked connection, want 0", calls)
	}
}

func TestHijackerAssertion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, ok := http.ResponseWriter(New(w, nil)).(http.Hijacker)
		if !ok {
			t.Error("Writer is not an http.Hijacker")
			return
		}
		c, _, err := hj.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		c.Write([]byte("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"))
		c.Close()
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Errorf("got %d, want 204", res.StatusCode)
	}
}

func TestTeeSeesBody(t *testing.T) {
	rec := httptest.NewRecorder()
	hw := New(rec, nil)
	var got bytes.Buffer
	hw.Tee(&got)
	io.WriteString(hw, "a")
	hw.ReadFrom(strings.NewReader("bc"))
	if got.String() != "abc" || rec.Body.String() != "abc" {
		t.Errorf("tee got %q, client got %q, want abc for both", got.String(), rec.Body.String())
	}
	if hw.Status() != 200 || !hw.Written() {
		t.Errorf("got status %d written %v", hw.Status(), hw.Written())
	}
}

func TestResetIsNew(t *testing.T) {
	calls := 0
	var hw Writer
	hw.DiscardBody()
	hw.Reset(httptest.NewRecorder(), func(status int) int { calls++; return status + 1 })
	rec := hw.ResponseWriter.(*httptest.ResponseRecorder)
	hw.Write([]byte("x"))
	hw.Done()
	if calls != 1 || hw.Status() != 201 || rec.Body.String() != "x" {
		t.Errorf("calls=%d status=%d body=%q, want 1, 201, %q (Reset must clear earlier state)", calls, hw.Status(), rec.Body.String(), "x")
	}
}
