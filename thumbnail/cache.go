package thumbnail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sharednothing/sharednothing/localcache"
)

// entry is one rendered thumbnail.
type entry struct {
	body        []byte
	contentType string
	etag        string
	modTime     time.Time
}

func (e *entry) cost() int64 { return int64(len(e.body)+len(e.contentType)+len(e.etag)) + 64 }

// store is the per-machine memory cache of rendered thumbnails.
type store interface {
	get(key string) (*entry, bool)
	set(key string, e *entry)
}

// memStore is the memory cache: a byte-bounded localcache.
type memStore struct {
	c *localcache.Cache[string, *entry]
}

// newMemStore returns the memory cache used by New.
func newMemStore(maxBytes int64) (store, error) {
	c, err := localcache.New(localcache.Options[string, *entry]{
		MaxBytes: maxBytes,
		Cost:     func(k string, e *entry) int64 { return int64(len(k)) + e.cost() },
	})
	if err != nil {
		return nil, err
	}
	return memStore{c}, nil
}

func (m memStore) get(key string) (*entry, bool) { return m.c.Get(key) }
func (m memStore) set(key string, e *entry)      { m.c.Set(key, e) }

// diskCache keeps rendered thumbnails as files named by a hash of their key,
// written atomically (temporary file, then rename) and capped in total size:
// past the cap, the oldest files are removed until 90% of it is used.
type diskCache struct {
	dir string
	max int64

	mu   sync.Mutex
	used int64
}

const diskMagic = "thumbnail1\n"

func newDiskCache(dir string, maxBytes int64) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &diskCache{dir: dir, max: maxBytes}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, de := range ents {
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() {
			d.used += fi.Size()
		}
	}
	return d, nil
}

func (d *diskCache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.dir, hex.EncodeToString(sum[:]))
}

func (d *diskCache) get(key, etag string) (*entry, bool) {
	b, err := os.ReadFile(d.path(key))
	if err != nil {
		return nil, false
	}
	rest, ok := bytes.CutPrefix(b, []byte(diskMagic))
	if !ok {
		return nil, false
	}
	ct, rest, ok1 := bytes.Cut(rest, []byte("\n"))
	mt, body, ok2 := bytes.Cut(rest, []byte("\n"))
	sec, err := strconv.ParseInt(string(mt), 10, 64)
	if !ok1 || !ok2 || err != nil {
		return nil, false
	}
	e := &entry{body: body, contentType: string(ct), etag: etag}
	if sec != 0 {
		e.modTime = time.Unix(sec, 0)
	}
	return e, true
}

func (d *diskCache) set(key string, e *entry) error {
	var sec int64
	if !e.modTime.IsZero() {
		sec = e.modTime.Unix()
	}
	f, err := os.CreateTemp(d.dir, ".tmp-*")
	if err != nil {
		return err
	}
	hdr := diskMagic + e.contentType + "\n" + strconv.FormatInt(sec, 10) + "\n"
	_, err = f.WriteString(hdr)
	if err == nil {
		_, err = f.Write(e.body)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), d.path(key))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	d.mu.Lock()
	d.used += int64(len(hdr) + len(e.body))
	over := d.used > d.max
	d.mu.Unlock()
	if over {
		return d.trim()
	}
	return nil
}

// trim removes the oldest files until the directory uses 90% of the cap.
func (d *diskCache) trim() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	type file struct {
		name string
		size int64
		mod  time.Time
	}
	var files []file
	var total int64
	for _, de := range ents {
		fi, err := de.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		files = append(files, file{de.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	slices.SortFunc(files, func(a, b file) int { return a.mod.Compare(b.mod) })
	var errs []error
	for _, f := range files {
		if total <= d.max*9/10 {
			break
		}
		if err := os.Remove(filepath.Join(d.dir, f.name)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
			continue
		}
		total -= f.size
	}
	d.used = total
	return errors.Join(errs...)
}
