package errs

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"strconv"
	"testing"
)

// statusTable is the API's contract, code by code.
var statusTable = []struct {
	code   Code
	value  string // the stable string value
	status int
}{
	{EINVALID, "invalid", http.StatusBadRequest},
	{EMISSING, "missing", http.StatusBadRequest},
	{EUNKNOWNKEY, "unknown_key", http.StatusBadRequest},
	{ENOTFOUND, "not_found", http.StatusNotFound},
	{ECONFLICT, "conflict", http.StatusConflict},
	{EUNAUTHORIZED, "unauthorized", http.StatusUnauthorized},
	{EINTERNAL, "internal", http.StatusInternalServerError},
	{"", "", http.StatusInternalServerError},
	{"no_such_code", "no_such_code", http.StatusInternalServerError},
}

func TestHTTPStatus(t *testing.T) {
	for _, c := range statusTable {
		t.Run(string(c.code), func(t *testing.T) {
			if string(c.code) != c.value {
				t.Errorf("code %s has value %q, want %q (codes are stable)", c.code, string(c.code), c.value)
			}
			if got := HTTPStatus(c.code); got != c.status {
				t.Errorf("HTTPStatus(%q) = %d, want %d", c.code, got, c.status)
			}
		})
	}
}

// declaredCodes reads errs.go and returns every constant of type Code, so
// a code added without a status (or without a row above) fails the tests.
func declaredCodes(t *testing.T) []Code {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errs.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []Code
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, val := range v.Values {
				s, err := strconv.Unquote(val.(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				codes = append(codes, Code(s))
			}
		}
	}
	if len(codes) < 5 {
		t.Fatalf("found only %v: the scan is broken", codes)
	}
	return codes
}

// TestEveryCodeMapped: every declared code has its own status in the map
// (not the 500 fallback by accident) and a row in the contract table;
// only EINTERNAL is a 500; no two codes share a value.
func TestEveryCodeMapped(t *testing.T) {
	seen := map[Code]bool{}
	for _, c := range declaredCodes(t) {
		if seen[c] {
			t.Errorf("code value %q declared twice", c)
		}
		seen[c] = true
		if _, ok := httpStatus[c]; !ok {
			t.Errorf("code %q has no HTTP status", c)
		}
		if (HTTPStatus(c) == http.StatusInternalServerError) != (c == EINTERNAL) {
			t.Errorf("code %q maps to %d", c, HTTPStatus(c))
		}
		inTable := false
		for _, r := range statusTable {
			inTable = inTable || r.code == c
		}
		if !inTable {
			t.Errorf("code %q has no row in statusTable", c)
		}
	}
	if len(httpStatus) != len(seen) {
		t.Errorf("httpStatus maps %d codes, %d are declared", len(httpStatus), len(seen))
	}
}

func TestErrorMessage(t *testing.T) {
	for _, c := range []struct {
		err  *Error
		want string
	}{
		{&Error{Code: EINVALID, File: "a.toml", Key: "embassy[1].webhook_url", Reason: "bad"}, "a.toml: embassy[1].webhook_url: bad"},
		{&Error{Code: EINVALID, File: "a.toml", Reason: "bad"}, "a.toml: bad"},
		{&Error{Code: EINVALID, Key: "nationality", Reason: "bad"}, "nationality: bad"},
		{&Error{Code: EINVALID, Reason: "bad", Err: errors.New("cause")}, "bad"},
		{Errorf(ENOTFOUND, "case %d not found", 7), "case 7 not found"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%#v: %q, want %q", c.err, got, c.want)
		}
	}
}

// TestErrorCodeAndPublic: a code survives wrapping; anything not ours is
// internal and tells a remote caller nothing but "internal error".
func TestErrorCodeAndPublic(t *testing.T) {
	secretPath := "/var/lib/checkinbot/secret.db"
	ours := &Error{Code: ECONFLICT, File: "/etc/checkinbot.toml", Key: "embassy[1].id", Reason: `"x" is used twice`}
	for _, c := range []struct {
		name   string
		err    error
		code   Code
		public string
	}{
		{"Nil", nil, "", ""},
		{"Ours", ours, ECONFLICT, `embassy[1].id: "x" is used twice`},
		{"Wrapped", fmt.Errorf("loading: %w", ours), ECONFLICT, `embassy[1].id: "x" is used twice`},
		{"Foreign", errors.New("open " + secretPath + ": permission denied"), EINTERNAL, "internal error"},
		{"NoCode", &Error{Key: "k", Reason: "open " + secretPath}, EINTERNAL, "internal error"},
		{"Internal", &Error{Code: EINTERNAL, Reason: "bbolt: " + secretPath}, EINTERNAL, "internal error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ErrorCode(c.err); got != c.code {
				t.Errorf("ErrorCode = %q, want %q", got, c.code)
			}
			if got := Public(c.err); got != c.public {
				t.Errorf("Public = %q, want %q", got, c.public)
			}
		})
	}
}

func TestUnwrap(t *testing.T) {
	err := &Error{Code: ENOTFOUND, File: "x.toml", Reason: "no such file", Err: fs.ErrNotExist}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("cause lost")
	}
}
