package sharednothing_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/sharednothing/sharednothing"
)

func ExampleChain() {
	tag := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Println("enter", name)
				next.ServeHTTP(w, r)
			})
		}
	}
	h := sharednothing.Chain(tag("outer"), tag("inner"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("handler")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	// Output:
	// enter outer
	// enter inner
	// handler
}

func ExampleDeriveKey() {
	secret := []byte("an application secret of 32+ bytes, shared by every instance")
	sessionKey := sharednothing.DeriveKey(secret, "session")
	thumbKey := sharednothing.DeriveKey(secret, "thumbnail")
	fmt.Println(len(sessionKey), bytes.Equal(sessionKey, thumbKey))
	fmt.Println(bytes.Equal(sessionKey, sharednothing.DeriveKey(secret, "session")))
	// Output:
	// 32 false
	// true
}
