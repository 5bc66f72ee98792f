package httperr

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDefaultAnswersStatusTextOnly(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/x", nil)
	err := fmt.Errorf("origin: Get %q: refused: %w", "http://10.0.0.5/internal/cat.jpg", WithStatus(http.StatusBadGateway, errors.New("down")))
	Handle(nil, rec, r, err)
	if rec.Code != http.StatusBadGateway {
		t.Errorf("status %d, want 502", rec.Code)
	}
	if body := rec.Body.String(); strings.Contains(body, "10.0.0.5") || !strings.Contains(body, "Bad Gateway") {
		t.Errorf("body %q: want the status text and nothing of the error", body)
	}
	if got := Status(errors.New("plain")); got != http.StatusInternalServerError {
		t.Errorf("Status(plain) = %d, want 500", got)
	}
}
