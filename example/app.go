package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // register decoders for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"io"
	"log"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	_ "golang.org/x/image/webp"

	"github.com/sharednothing/sharednothing/coherent"
	"github.com/sharednothing/sharednothing/localcache"
	"github.com/sharednothing/sharednothing/replicapin"
	"github.com/sharednothing/sharednothing/session"
	"github.com/sharednothing/sharednothing/thumbnail"
)

// Upload limits. maxPixels matches the thumbnail renderer's default limit,
// so every photo the gallery accepts can also be rendered.
const (
	maxUploadBytes = 10 << 20
	maxPixels      = 50_000_000
	maxNameLen     = 40
	maxNoteLen     = 2000
)

// thumbSpec is the size of gallery thumbnails.
var thumbSpec = thumbnail.Spec{Width: 320, Height: 240}

// app holds what the handlers share. Every field is safe for concurrent use.
type app struct {
	instance string
	dialect  string // "postgres" or "sqlite"
	uploads  string // directory of the uploaded originals

	secure bool  // served over HTTPS (-secure-cookies)
	quota  int64 // photo bytes per user

	primary  *sql.DB // the primary pool, for what is not a page's read or write
	sessions *session.Manager
	pins     *replicapin.DB // page reads (Read) and writes (Writer)
	cache    *localcache.ResponseCache
	thumbs   *thumbnail.Handler
	logouts  *localcache.Cache[string, int64] // user -> last logout, Unix µs

	// logoutTimes reads logouts: through logoutKeys when there is a bus
	// (PostgreSQL), directly on SQLite.
	logoutTimes interface {
		GetOrLoad(ctx context.Context, user string, load func(context.Context, string) (int64, error)) (int64, error)
	}
	bus        *coherent.Bus          // nil on SQLite
	logoutKeys *coherent.Cache[int64] // logouts, invalidated on every instance over bus
	pages      *coherent.Pages        // cache, purged on every instance over bus; nil on SQLite

	// summaries reads summaryCache (user -> photo and note counts): through
	// summaryKeys when there is a bus, directly on SQLite.
	summaryCache *localcache.Cache[string, summary]
	summaryKeys  *coherent.Cache[summary]
	summaries    interface {
		GetOrLoad(ctx context.Context, user string, load func(context.Context, string) (summary, error)) (summary, error)
	}

	draining atomic.Bool // set on SIGTERM; see drainAware
}

// routes returns the application's handler. The public home page runs
// outside the session middleware, so it cannot show anything personal, and
// goes through the response cache, inside the pin middleware (which may set
// a cookie that must not be stored).
func (a *app) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(a.instanceHeader, a.drainAware, a.securityHeaders, middleware.Recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, http.StatusNotFound, "There is no page at this address.")
	})

	r.Get("/healthz", a.healthz)
	r.Get("/style.css", a.style)
	r.Method("GET", "/metrics", metricsHandler(a.statsSources()))
	r.Mount("/thumbs", a.thumbs)
	// The home page: pins first (a client that just wrote reads through
	// the cache), then the bus's refill marks (a refill after a purge
	// reads at the write's position), then the response cache.
	home := []func(http.Handler) http.Handler{a.pins.Handler}
	if a.pages != nil {
		home = append(home, a.pages.Handler)
	}
	r.With(append(home, a.cache.Handler)...).Get("/", a.home)

	r.Group(func(r chi.Router) {
		r.Use(http.NewCrossOriginProtection().Handler, a.sessions.LoadAndSave, a.pins.Handler, noStore)
		r.Get("/login", a.loginForm)
		r.Post("/login", a.login)
		r.Post("/logout", a.logout)
		r.Group(func(r chi.Router) {
			r.Use(a.requireUser)
			r.Get("/notes", a.notes)
			r.Post("/notes", a.addNote)
			r.Get("/photos", a.photos)
			r.Post("/photos", a.upload)
			r.Post("/photos/{id}/delete", a.deletePhoto)
		})
	})
	return r
}

// instanceHeader names the instance on every response, so tests (and
// curious users) can see which one served a request.
func (a *app) instanceHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", a.instance)
		next.ServeHTTP(w, r)
	})
}

// drainAware makes a draining instance (after SIGTERM) easy for a load
// balancer to leave. Every response closes its connection, so none is left
// idle to be reused when the instance stops accepting. Page reads (GET and
// HEAD, but not /healthz or thumbnails) get no answer at all: the
// connection is closed at once, which a balancer that retries idempotent
// requests on a failed connection (nginx: proxy_next_upstream error) sends
// to another instance, counting it as a failure of this one (max_fails), so
// that it stops choosing it before the listener closes. A 503 would do the
// same only if the balancer also retried and counted 503s, and then every
// instance's 503 while the database is down would take instances out too.
// Writes are still served: a balancer does not resend a POST it has sent.
func (a *app) drainAware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.draining.Load() {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			r.URL.Path != "/healthz" && !strings.HasPrefix(r.URL.Path, "/thumbs/") {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy allows the pages nothing but their own stylesheet,
// images and forms: no scripts at all, no plugins, no framing by other
// sites (frame-ancestors, with X-Frame-Options for older browsers).
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// securityHeaders sets the headers a production site sends on every
// response.
func (a *app) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if a.secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// style serves the stylesheet (a file, not inline, so the CSP needs no
// 'unsafe-inline').
func (a *app) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(stylesheet)
}

// noStore keeps per-user pages out of every shared cache.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, no-store")
		next.ServeHTTP(w, r)
	})
}

// requireUser sends visitors who are not logged in to the login page.
func (a *app) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.sessions.GetString(r.Context(), "user") == "" {
			a.sessions.Put(r.Context(), "flash", "Log in first.")
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// page is what every template gets.
type page struct {
	Title    string
	User     string // empty on public pages
	Flash    string
	Error    string
	Instance string
	Public   bool
	Notes    []note
	Photos   []photoView
	Dialect  string
	ReadFrom string // where the page's data was read: "primary" or "replica-N"
	Key      string // idempotency key for the page's form
	QuotaMiB int64
	Rendered string // when the page was rendered (the home page, which is cached)

	Summary     *summary // the user's counts, on per-user pages
	SummaryFrom string   // where they came from: "cache", "primary" or "replica-N"
}

type photoView struct {
	photo
	Thumb     string
	DeleteKey string // idempotency key of the photo's delete form (the owner's gallery)
}

// view fills in what every per-user page shows.
func (a *app) view(r *http.Request, title string) page {
	return page{
		Title:    title,
		User:     a.sessions.GetString(r.Context(), "user"),
		Flash:    a.sessions.PopString(r.Context(), "flash"),
		Instance: a.instance,
		Dialect:  a.dialect,
		Key:      newKey(),
		QuotaMiB: a.quota >> 20,
	}
}

// newKey returns a fresh idempotency key. Each rendering of a form gets
// one; the browser sends it back with the form, and sends the same one again
// if the user retries the submission.
func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// formKey returns the request's idempotency key (form field "key"): empty
// when absent or malformed (then the write is not deduplicated).
func formKey(r *http.Request) string {
	k := r.PostFormValue("key")
	if len(k) < 16 || len(k) > 64 {
		return ""
	}
	for _, c := range k {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return ""
		}
	}
	return k
}

// replayHeader marks a response to a retried write that had already been
// saved: the same answer as the first time, nothing written twice.
const replayHeader = "Idempotent-Replayed"

func (a *app) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := templates[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		log.Printf("render %s: %v", name, err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail answers with an error page that says what went wrong.
func (a *app) fail(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "2")
	}
	w.Header().Set("Cache-Control", "no-store")
	a.render(w, status, "error", page{Title: http.StatusText(status), Error: msg, Instance: a.instance, Public: true})
}

// dbFail answers a database error: 503 with a plain explanation, never a
// stack trace. The details go to the log.
func (a *app) dbFail(w http.ResponseWriter, r *http.Request, err error) {
	log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
	msg := "The database is not answering right now, so this page cannot be shown. Please try again in a moment."
	if r.Method == http.MethodPost {
		msg = "The database is not accepting writes right now, so nothing was saved. Please try again in a moment."
	}
	a.fail(w, http.StatusServiceUnavailable, msg)
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	var ps []photo
	from, err := a.pins.Read(r.Context(), func(db *sql.DB) (err error) {
		ps, err = listPhotos(r.Context(), db, "", 12)
		return err
	})
	if err != nil {
		a.dbFail(w, r, err)
		return
	}
	// Public and the same for everyone: minutes in each instance's
	// response cache, tagged so that every upload and delete purges it on
	// every instance (see changed).
	localcache.Tag(r, photosTag)
	w.Header().Set("Cache-Control", "public, max-age=300")
	a.render(w, http.StatusOK, "home", page{Title: "Photo notebook", Public: true, Instance: a.instance,
		Dialect: a.dialect, Photos: a.photoViews(ps), ReadFrom: from,
		Rendered: time.Now().UTC().Format("15:04:05.000")})
}

// photosTag tags every cached page that lists photos.
const photosTag = "photos"

// changed announces, after a write by user committed, that user's counts
// changed, and with photos that every page listing photos did too: every
// instance drops them (this one before Send returns), and refills them
// from a replica that has replayed the write, or from the primary. When
// the announcement fails, the write stands; the other instances then keep
// their copies until the bus flushes them on reconnecting, or until the
// TTL (summaryTTL; the home page's max-age).
func (a *app) changed(ctx context.Context, user string, photos bool) {
	if a.bus == nil { // SQLite: one instance, nobody else to tell
		a.summaryCache.Delete(user)
		if photos {
			a.cache.PurgeTag(photosTag)
		}
		return
	}
	items := []coherent.Item{a.summaryKeys.Key(user)}
	if photos {
		items = append(items, a.pages.Tag(photosTag))
	}
	if err := a.bus.Send(ctx, items...); err != nil {
		log.Printf("announcing %v: %v", items, err)
	}
}

// summary returns user's counts and where they came from: "cache", or the
// server the load read them from. A client that just wrote (pinned) reads
// them through the cache, as the request that wrote does.
func (a *app) summary(ctx context.Context, user string) (*summary, string, error) {
	var loaded atomic.Bool
	s, err := a.summaries.GetOrLoad(ctx, user, func(ctx context.Context, user string) (summary, error) {
		loaded.Store(true)
		var s summary
		from, err := a.pins.Read(ctx, func(db *sql.DB) (err error) {
			s, err = summaryOf(ctx, db, user)
			return err
		})
		s.From = from
		return s, err
	})
	if err != nil {
		return nil, "", err
	}
	from := "cache"
	if loaded.Load() {
		from = s.From
	}
	return &s, from, nil
}

// withSummary adds the user's counts to p; a failure to read them only
// leaves them out.
func (a *app) withSummary(r *http.Request, p *page) {
	s, from, err := a.summary(r.Context(), p.User)
	if err != nil {
		log.Printf("%s %s: counts: %v", r.Method, r.URL.Path, err)
		return
	}
	p.Summary, p.SummaryFrom = s, from
}

func (a *app) loginForm(w http.ResponseWriter, r *http.Request) {
	a.render(w, http.StatusOK, "login", a.view(r, "Log in"))
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" || utf8.RuneCountInString(name) > maxNameLen || !utf8.ValidString(name) {
		p := a.view(r, "Log in")
		p.Error = fmt.Sprintf("Type a name of 1 to %d characters.", maxNameLen)
		a.render(w, http.StatusBadRequest, "login", p)
		return
	}
	ctx := r.Context()
	if err := a.sessions.RenewToken(ctx); err != nil {
		a.fail(w, http.StatusInternalServerError, "Could not start a session.")
		return
	}
	a.sessions.Put(ctx, "user", name)
	a.sessions.Put(ctx, "flash", "Welcome, "+name+".")
	http.Redirect(w, r, "/notes", http.StatusSeeOther)
}

// logout ends the user's sessions everywhere: it records the time, so any
// copy of the cookie (another browser, a stolen one) is refused from now on
// (see validSession), then deletes the cookie in this browser.
func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if user := a.sessions.GetString(ctx, "user"); user != "" {
		now := time.Now()
		if err := setLoggedOut(ctx, a.pins.Writer(ctx), user, now); err != nil {
			log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
			a.fail(w, http.StatusServiceUnavailable, "The database is not accepting writes right now, so you are still logged in. Please try again in a moment.")
			return
		}
		// Every instance drops its cached logout time for user (this one
		// too, even if the announcement fails; the others then within
		// logoutTTL).
		if a.bus != nil {
			if err := a.bus.Send(ctx, a.logoutKeys.Key(user)); err != nil {
				log.Printf("announcing %q's logout: %v", user, err)
			}
		} else {
			a.logouts.Delete(user)
		}
	}
	a.sessions.Destroy(ctx)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// validSession is the session manager's Validate hook: a logged-in session
// is valid if it was issued (at login: RenewToken) after the user's last
// logout. Each instance caches logout times; a logout reaches every
// instance over the invalidation bus, or within logoutTTL when the bus is
// down. When the database
// cannot be asked, sessions are accepted: an outage must not log everyone
// out; the check resumes when it is back.
func (a *app) validSession(ctx context.Context, v *session.Values) bool {
	user, _ := v.Get("user").(string)
	if user == "" {
		return true
	}
	out, err := a.logoutTimes.GetOrLoad(ctx, user, func(ctx context.Context, user string) (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return loggedOutAt(ctx, a.primary, user)
	})
	if err != nil {
		log.Printf("checking %q's logout time: %v (session accepted)", user, err)
		return true
	}
	return v.Issued().UnixMicro() > out
}

func (a *app) notes(w http.ResponseWriter, r *http.Request) {
	p := a.view(r, "Your notes")
	var ns []note
	from, err := a.pins.Read(r.Context(), func(db *sql.DB) (err error) {
		ns, err = listNotes(r.Context(), db, p.User, 100)
		return err
	})
	if err != nil {
		a.dbFail(w, r, err)
		return
	}
	p.Notes, p.ReadFrom = ns, from
	a.withSummary(r, &p)
	a.render(w, http.StatusOK, "notes", p)
}

func (a *app) addNote(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	text := strings.TrimSpace(r.PostFormValue("text"))
	if text == "" || utf8.RuneCountInString(text) > maxNoteLen || !utf8.ValidString(text) {
		p := a.view(r, "Your notes")
		p.Error = fmt.Sprintf("A note is 1 to %d characters of text.", maxNoteLen)
		a.render(w, http.StatusBadRequest, "notes", p)
		return
	}
	replayed, err := addNote(ctx, a.pins.Writer(ctx), a.sessions.GetString(ctx, "user"), formKey(r), text)
	if err != nil {
		a.dbFail(w, r, err)
		return
	}
	if replayed {
		w.Header().Set(replayHeader, "true")
	}
	a.changed(ctx, a.sessions.GetString(ctx, "user"), false)
	a.sessions.Put(ctx, "flash", "Saved.")
	http.Redirect(w, r, "/notes", http.StatusSeeOther)
}

func (a *app) photos(w http.ResponseWriter, r *http.Request) {
	p := a.view(r, "Your photos")
	ps, from, err := a.userPhotos(r, p.User)
	if err != nil {
		a.dbFail(w, r, err)
		return
	}
	p.Photos, p.ReadFrom = a.photoViews(ps), from
	for i := range p.Photos {
		p.Photos[i].DeleteKey = newKey()
	}
	a.withSummary(r, &p)
	a.render(w, http.StatusOK, "photos", p)
}

// deletePhoto deletes one of the user's photos: the row (once per
// idempotency key), then, after the commit, the file, and announces the
// change to every instance. Another user's photo, or one already gone, is
// a 404 that says so.
func (a *app) deletePhoto(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := a.sessions.GetString(ctx, "user")
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		a.fail(w, http.StatusNotFound, "There is no such photo.")
		return
	}
	file, replayed, err := deletePhoto(ctx, a.pins.Writer(ctx), formKey(r), user, id)
	switch {
	case errors.Is(err, errNoPhoto):
		a.fail(w, http.StatusNotFound, "You have no such photo: it may have been deleted already.")
		return
	case err != nil:
		a.dbFail(w, r, err)
		return
	}
	if file != "" {
		if err := os.Remove(filepath.Join(a.uploads, file)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Printf("removing deleted photo %s: %v", file, err)
		}
	}
	if replayed {
		w.Header().Set(replayHeader, "true")
	}
	a.changed(ctx, user, true)
	a.sessions.Put(ctx, "flash", "Photo deleted.")
	http.Redirect(w, r, "/photos", http.StatusSeeOther)
}

// userPhotos reads user's newest photos, from a replica when the user's
// pin allows.
func (a *app) userPhotos(r *http.Request, user string) (ps []photo, from string, err error) {
	from, err = a.pins.Read(r.Context(), func(db *sql.DB) (err error) {
		ps, err = listPhotos(r.Context(), db, user, 60)
		return err
	})
	return ps, from, err
}

func (a *app) photoViews(ps []photo) []photoView {
	vs := make([]photoView, len(ps))
	for i, p := range ps {
		vs[i] = photoView{photo: p, Thumb: a.thumbs.URL(p.File, thumbSpec)}
	}
	return vs
}

// upload stores a photo: size-limited, checked to be an image we can
// render, written under a random name (atomically, so another instance
// never sees half a file), then recorded in the database.
func (a *app) upload(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	badUpload := func(status int, msg string) {
		p := a.view(r, "Your photos")
		p.Error = msg
		if ps, _, err := a.userPhotos(r, p.User); err == nil {
			p.Photos = a.photoViews(ps)
		}
		a.render(w, status, "photos", p)
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes)
	f, hdr, err := r.FormFile("photo")
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		badUpload(http.StatusRequestEntityTooLarge, fmt.Sprintf("That file is too large: photos can be at most %d MiB.", maxUploadBytes>>20))
		return
	case errors.Is(err, http.ErrMissingFile), errors.Is(err, http.ErrNotMultipart):
		badUpload(http.StatusBadRequest, "Choose a photo to upload.")
		return
	case err != nil:
		badUpload(http.StatusBadRequest, "The upload could not be read; please try again.")
		return
	}
	defer f.Close()
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
	}

	cfg, format, err := image.DecodeConfig(f)
	switch {
	case err != nil:
		badUpload(http.StatusUnsupportedMediaType, fmt.Sprintf("%q is not a JPEG, PNG, GIF or WebP image.", hdr.Filename))
		return
	case cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels:
		badUpload(http.StatusRequestEntityTooLarge, fmt.Sprintf("%q is %d×%d pixels; photos can have at most %d megapixels.",
			hdr.Filename, cfg.Width, cfg.Height, maxPixels/1_000_000))
		return
	}

	name, err := a.save(f, format)
	if err != nil {
		log.Printf("save upload: %v", err)
		a.fail(w, http.StatusInternalServerError, "The photo could not be stored.")
		return
	}
	title := strings.TrimSpace(r.PostFormValue("title"))
	if title == "" {
		title = strings.TrimSuffix(filepath.Base(hdr.Filename), filepath.Ext(hdr.Filename))
	}
	if utf8.RuneCountInString(title) > 80 || !utf8.ValidString(title) {
		title = "photo"
	}
	user := a.sessions.GetString(ctx, "user")
	replayed, err := addPhoto(ctx, a.pins.Writer(ctx), a.dialect == "postgres", formKey(r),
		photo{Owner: user, File: name, Title: title, Width: cfg.Width, Height: cfg.Height, Bytes: hdr.Size}, a.quota)
	if replayed || err != nil {
		os.Remove(filepath.Join(a.uploads, name))
	}
	if errors.Is(err, errQuota) {
		badUpload(http.StatusRequestEntityTooLarge, fmt.Sprintf("Your photos would take more than your %d MiB; delete some first.", a.quota>>20))
		return
	}
	if err != nil {
		a.dbFail(w, r, err)
		return
	}
	if replayed {
		w.Header().Set(replayHeader, "true")
	}
	a.changed(ctx, user, true)
	a.sessions.Put(ctx, "flash", "Photo uploaded.")
	http.Redirect(w, r, "/photos", http.StatusSeeOther)
}

// save copies an upload into the uploads directory under a random name.
func (a *app) save(f multipart.File, format string) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	var b [12]byte
	rand.Read(b[:])
	ext := map[string]string{"jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp"}[format]
	name := hex.EncodeToString(b[:]) + ext
	tmp, err := os.CreateTemp(a.uploads, ".upload-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this finds nothing
	if _, err := io.Copy(tmp, f); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	return name, os.Rename(tmp.Name(), filepath.Join(a.uploads, name))
}

// health is the /healthz document.
type health struct {
	Instance string          `json:"instance"`
	Draining bool            `json:"draining"`
	Database string          `json:"database"`
	Primary  bool            `json:"primary_up"`
	Replicas []replicaHealth `json:"replicas"`
	Bus      *coherent.Stats `json:"bus,omitempty"` // the invalidation bus (PostgreSQL only)
}

type replicaHealth struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
}

// healthz reports the instance and what it sees of the databases. It
// answers 200 while the process serves, even with the primary down (reads
// can still be served from the replicas), and 503 once it drains after
// SIGTERM, so that health-checking load balancers stop choosing it.
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 500*time.Millisecond)
	defer cancel()
	h := health{Instance: a.instance, Draining: a.draining.Load(), Database: a.dialect,
		Primary: a.primary.PingContext(ctx) == nil, Replicas: replicaHealths(a.pins.Stats())}
	if a.bus != nil {
		st := a.bus.Stats()
		h.Bus = &st
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Draining {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(h)
}

func replicaHealths(st replicapin.Stats) []replicaHealth {
	hs := []replicaHealth{}
	for _, n := range st.Replicas {
		hs = append(hs, replicaHealth{Name: n.Name, Up: n.Up})
	}
	return hs
}
