package thumbnail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Source is where original images come from. Implementations must be safe
// for concurrent use. Names are slash-separated relative paths that the
// handler has already checked (no "..", no leading slash, no empty or "."
// elements, no backslashes or NUL bytes).
//
// Errors matching [fs.ErrNotExist] become 404; errors matching
// [context.DeadlineExceeded] or [ErrOriginTimeout] become 504; other errors
// become 502.
type Source interface {
	// Stat returns the version of the named image without reading it.
	Stat(ctx context.Context, name string) (Info, error)
	// Open returns the named image's bytes and the version they are.
	Open(ctx context.Context, name string) (io.ReadCloser, Info, error)
}

// Info identifies one version of a source image.
type Info struct {
	// Version changes whenever the image's bytes change: an ETag, or
	// modification time and size. It goes into cache keys and ETags.
	Version string
	// ModTime is the last modification time, or zero if unknown. It becomes
	// the Last-Modified header.
	ModTime time.Time
	// Size is the byte length, or -1 if unknown. A known size above
	// Options.MaxSourceBytes is refused before reading.
	Size int64
}

// ErrOriginTimeout reports that a source did not answer in time (504).
var ErrOriginTimeout = errors.New("thumbnail: origin timed out")

// Dir returns a [Source] over the directory at path on the local file
// system. Names are resolved inside an [os.Root], so no name, ".." or
// symbolic link can reach outside the directory. The directory is opened
// once, on first use (or by [New]), and stays open.
func Dir(path string) Source { return &dir{path: path} }

type dir struct {
	path string
	once sync.Once
	root *os.Root
	err  error
}

func (d *dir) open() (*os.Root, error) {
	d.once.Do(func() { d.root, d.err = os.OpenRoot(d.path) })
	return d.root, d.err
}

func (d *dir) Stat(ctx context.Context, name string) (Info, error) {
	root, err := d.open()
	if err != nil {
		return Info{}, err
	}
	st, err := root.Stat(name)
	if err != nil {
		return Info{}, notExist(err)
	}
	return statInfo(st)
}

func (d *dir) Open(ctx context.Context, name string) (io.ReadCloser, Info, error) {
	root, err := d.open()
	if err != nil {
		return nil, Info{}, err
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, Info{}, notExist(err)
	}
	st, err := f.Stat()
	if err == nil {
		var info Info
		if info, err = statInfo(st); err == nil {
			return f, info, nil
		}
	}
	f.Close()
	return nil, Info{}, err
}

func statInfo(st fs.FileInfo) (Info, error) {
	if !st.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%s: not a regular file: %w", st.Name(), fs.ErrNotExist)
	}
	mt := st.ModTime()
	return Info{
		Version: strconv.FormatInt(mt.UnixNano(), 36) + "-" + strconv.FormatInt(st.Size(), 36),
		ModTime: mt,
		Size:    st.Size(),
	}, nil
}

// notExist makes every failure to resolve a name inside the root (missing,
// escaping, a symlink out) read as "not found", so the response does not tell
// an attacker which names exist outside it.
func notExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
}

// Origin returns a [Source] that fetches images over HTTP from baseURL
// joined with the name, using client (or [http.DefaultClient] if nil). Give
// the client a Timeout: a request that exceeds it is answered with 504.
// The origin's ETag, or else its Last-Modified and Content-Length, version
// the image. Stat costs one HEAD request per thumbnail request.
//
// Redirects are followed only to baseURL's own host and to the hosts listed
// in redirectHosts (written as in a URL: "cdn.example.com" or
// "cdn.example.com:8443"), so a compromised or misconfigured origin cannot
// point the handler at an internal address; a redirect elsewhere is a 502.
// The client's own CheckRedirect, if any, still applies to the redirects
// allowed. client itself is not modified.
func Origin(baseURL string, client *http.Client, redirectHosts ...string) Source {
	if client == nil {
		client = http.DefaultClient
	}
	o := &origin{base: strings.TrimRight(baseURL, "/"), hosts: make(map[string]bool)}
	if u, err := url.Parse(o.base); err == nil {
		o.hosts[strings.ToLower(u.Host)] = true
	}
	for _, h := range redirectHosts {
		o.hosts[strings.ToLower(h)] = true
	}
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !o.hosts[strings.ToLower(req.URL.Host)] {
			return errRedirect
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	o.client = &c
	return o
}

// errRedirect stops a redirect to a host Origin was not given.
var errRedirect = errors.New("thumbnail: origin redirected to a host not in its redirect hosts")

type origin struct {
	base   string
	hosts  map[string]bool // where redirects may go
	client *http.Client
}

func (o *origin) do(ctx context.Context, method, name string) (*http.Response, Info, error) {
	u := o.base + "/" + (&url.URL{Path: name}).EscapedPath()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, Info{}, err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		var ne interface{ Timeout() bool }
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, Info{}, fmt.Errorf("%w: %v", ErrOriginTimeout, err)
		}
		return nil, Info{}, fmt.Errorf("origin: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		resp.Body.Close()
		return nil, Info{}, fmt.Errorf("origin %s: %s: %w", name, resp.Status, fs.ErrNotExist)
	case resp.StatusCode == http.StatusGatewayTimeout:
		resp.Body.Close()
		return nil, Info{}, fmt.Errorf("%w: origin said %s", ErrOriginTimeout, resp.Status)
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, Info{}, fmt.Errorf("origin %s: unexpected %s", name, resp.Status)
	}
	info := Info{Size: resp.ContentLength, Version: resp.Header.Get("ETag")}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		info.ModTime = t
	}
	if info.Version == "" {
		info.Version = resp.Header.Get("Last-Modified") + "-" + strconv.FormatInt(resp.ContentLength, 10)
	}
	return resp, info, nil
}

func (o *origin) Stat(ctx context.Context, name string) (Info, error) {
	resp, info, err := o.do(ctx, http.MethodHead, name)
	if err != nil {
		return Info{}, err
	}
	resp.Body.Close()
	return info, nil
}

func (o *origin) Open(ctx context.Context, name string) (io.ReadCloser, Info, error) {
	resp, info, err := o.do(ctx, http.MethodGet, name)
	if err != nil {
		return nil, Info{}, err
	}
	return timeoutBody{resp.Body}, info, nil
}

// timeoutBody turns a client timeout while reading the body into
// ErrOriginTimeout.
type timeoutBody struct{ io.ReadCloser }

func (b timeoutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		var ne interface{ Timeout() bool }
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			err = fmt.Errorf("%w: %v", ErrOriginTimeout, err)
		}
	}
	return n, err
}
