package main

import "fmt"

func main() {
	fmt.Println("example: the photo notebook app is not built yet; it will start its own PostgreSQL primary and replica and serve on http://127.0.0.1:8080")
}
