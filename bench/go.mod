module github.com/sharednothing/sharednothing/bench

go 1.26.0

replace github.com/sharednothing/sharednothing => ../

require (
	github.com/alexedwards/scs/redisstore v0.0.0-20251002162104-209de6e426de
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/gomodule/redigo v1.9.3
	github.com/gorilla/securecookie v1.1.2
	github.com/gorilla/sessions v1.4.0
	github.com/sharednothing/sharednothing v0.0.0
)
