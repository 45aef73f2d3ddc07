package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
)

// consoleFiles are the console's page, script and style, served at /: plain
// HTML and JavaScript, embedded so `go build` makes the console with no other step.
//
//go:embed console
var consoleFiles embed.FS

// consoleHandler serves the console: / is its single page, the rest its assets.
func consoleHandler() http.Handler {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the embedded directory is there, or this does not compile
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, req.Method+" "+req.URL.Path+": the console only serves GET; changes go to /api/", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
		files.ServeHTTP(w, req)
	})
}
