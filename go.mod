module github.com/sharednothing/sharednothing

go 1.25.0

require (
	github.com/disintegration/imaging v1.6.2
	github.com/gorilla/securecookie v1.1.2
	github.com/hashicorp/golang-lru/v2 v2.0.7
	golang.org/x/image v0.44.0
)
