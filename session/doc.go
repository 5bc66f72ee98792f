// Package session keeps each client's session in a signed, encrypted cookie
// sealed with github.com/gorilla/securecookie, so any instance behind a load
// balancer can serve any request without a shared session store.
package session
