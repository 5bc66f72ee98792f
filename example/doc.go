// Command example is a small photo notebook that uses all four sharednothing
// middlewares on a chi router. It is not built yet.
package main
