package main

import (
	"embed"
	"html/template"
)

//go:embed templates/*.html
var templateFiles embed.FS

// stylesheet is served at /style.css.
//
//go:embed templates/style.css
var stylesheet []byte

// templates holds one parsed template set per page, each with the layout.
var templates = func() map[string]*template.Template {
	m := map[string]*template.Template{}
	for _, name := range []string{"home", "login", "notes", "photos", "error"} {
		m[name] = template.Must(template.ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html"))
	}
	return m
}()
