// Package thumbnail renders thumbnails on demand from signed URLs: whichever
// instance a request reaches renders the size the first time and keeps it in
// its own cache, with a bounded work queue and limits against hostile images.
package thumbnail
