module github.com/sharednothing/sharednothing/bench

go 1.25

require github.com/sharednothing/sharednothing v0.0.0

replace github.com/sharednothing/sharednothing => ../
