package main

// The Go commands the documentation gives — benchmarks to reproduce a
// number, tests to run, the load tool — must name things that exist: a
// reader who copies `go test ./bot -bench Fair` should not get "no tests to
// run" because a benchmark was renamed since the number was written. This
// checks every such command statically (no build): its packages exist, each
// -run/-bench/-fuzz pattern's top level matches a function of the right kind
// declared in one of them, and every flag given to `go run ./cmd/...` is one
// that command defines. The first-delivery walk-through is run for real
// elsewhere (TestFirstDeliveryDoc).

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// goCommand is one `go test` or `go run` command found in a document.
type goCommand struct {
	doc  string // file it came from, for the error
	line string // the command as written, for the error
	args []string
}

// TestDocGoCommandsNameRealThings checks every `go test` and `go run ./cmd/…`
// command in README.md and docs/*.md.
func TestDocGoCommandsNameRealThings(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(repoRoot, "README.md"))
	var cmds []goCommand
	for _, d := range docs {
		cmds = append(cmds, goCommandsIn(filepath.Base(d), readFile(t, d))...)
	}
	if len(cmds) < 10 {
		t.Fatalf("found only %d go commands in the docs: the extractor is broken", len(cmds))
	}
	pkgs := map[string]*pkgDecls{}
	checked := 0
	for _, c := range cmds {
		problems, ok := checkGoCommand(c, func(dir string) (*pkgDecls, error) {
			if p, ok := pkgs[dir]; ok {
				return p, nil
			}
			p, err := declsOf(filepath.Join(repoRoot, dir))
			pkgs[dir] = p
			return p, err
		})
		if ok {
			checked++
		}
		for _, p := range problems {
			t.Errorf("%s: `%s`: %s", c.doc, c.line, p)
		}
	}
	if checked < 10 {
		t.Fatalf("only %d commands were checkable", checked)
	}
}

// TestDocCommandCheckCatchesStaleNames shows the check failing on the kinds
// of staleness it exists for.
func TestDocCommandCheckCatchesStaleNames(t *testing.T) {
	fixture := map[string]*pkgDecls{
		"bot":             {tests: []string{"TestRunner"}, benches: []string{"BenchmarkFair", "BenchmarkRunner"}, fuzz: []string{"FuzzUpdate"}},
		"cmd/checkinload": {flags: map[string]bool{"n": true, "day": true}},
	}
	load := func(dir string) (*pkgDecls, error) {
		if p, ok := fixture[dir]; ok {
			return p, nil
		}
		return nil, os.ErrNotExist
	}
	for _, tc := range []struct {
		line string
		bad  bool
	}{
		{"go test ./bot -run '^$' -bench Fair -benchtime 15s -count 3", false},
		{"go test ./bot -run '^$' -bench 'Fair/users=1024' -benchtime 80000x", false},
		{"CHECKIN_X=1 go test ./bot -run '^TestRunner$' -v", false},
		{"go test -run XXX -bench . ./bot", false},
		{"go test ./bot -run '^$' -bench Fare", true},         // renamed benchmark
		{"go test ./bot -run '^TestRunnr$'", true},            // typo in a test name
		{"go test ./bot -run='^$' -fuzz='^FuzzUpdat$'", true}, // fuzz target gone
		{"go test ./boot -bench Fair", true},                  // package moved
		{"go run ./cmd/checkinload -n 10000 -day 120s", false},
		{"go run ./cmd/checkinload -n 10000 -days 120s", true}, // unknown flag
		{"go test ./bot -bench 'Fair(' ", true},                // not a regexp
	} {
		cmds := goCommandsIn("fixture.md", "```sh\n"+tc.line+"\n```\n")
		if len(cmds) != 1 {
			t.Fatalf("%q: extracted %d commands", tc.line, len(cmds))
		}
		problems, _ := checkGoCommand(cmds[0], load)
		if got := len(problems) > 0; got != tc.bad {
			t.Errorf("%q: problems %v, want bad=%v", tc.line, problems, tc.bad)
		}
	}
	inline := goCommandsIn("x.md", "Run (`go test ./bot -run '^$' -bench\nFair -count 3`) and `go vet`.\n")
	if len(inline) != 1 || !strings.Contains(inline[0].line, "-bench Fair") {
		t.Errorf("inline command across a line break: %+v", inline)
	}
}

var inlineCode = regexp.MustCompile("`([^`]+)`")

// goCommandsIn extracts go test / go run commands from Markdown: every line
// of a fenced block, and every inline code span (which may wrap).
func goCommandsIn(doc, text string) []goCommand {
	var out []goCommand
	add := func(s string) {
		for _, part := range regexp.MustCompile(`\|\||&&|[|;]`).Split(s, -1) {
			part = strings.TrimSpace(part)
			if i := strings.Index(part, " #"); i >= 0 {
				part = strings.TrimSpace(part[:i])
			}
			args, err := shellWords(part)
			if err != nil {
				continue
			}
			for len(args) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(args[0]) {
				args = args[1:]
			}
			if len(args) >= 2 && args[0] == "go" && (args[1] == "test" || args[1] == "run") {
				out = append(out, goCommand{doc: doc, line: part, args: args[1:]})
			}
		}
	}
	var prose strings.Builder
	inFence := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			add(l)
			continue
		}
		prose.WriteString(l)
		prose.WriteString("\n")
	}
	for _, m := range inlineCode.FindAllStringSubmatch(strings.ReplaceAll(prose.String(), "\n", " "), -1) {
		add(m[1])
	}
	return out
}

// shellWords splits a command line as sh would for the simple quoting docs use.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case '\'', '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unclosed quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case '\\':
			if i+1 < len(s) {
				cur.WriteByte(s[i+1])
				i++
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// pkgDecls is what a package declares that commands can name.
type pkgDecls struct {
	tests, benches, fuzz []string
	flags                map[string]bool // flag names defined by its non-test files
}

// goTestValueFlags are the go test flags that take a value.
var goTestValueFlags = map[string]bool{"run": true, "bench": true, "fuzz": true, "list": true, "skip": true,
	"benchtime": true, "count": true, "timeout": true, "cpuprofile": true, "memprofile": true, "blockprofile": true,
	"mutexprofile": true, "trace": true, "fuzztime": true, "fuzzminimizetime": true, "parallel": true, "p": true,
	"tags": true, "cpu": true, "coverprofile": true, "o": true, "outputdir": true, "benchmem": false}

// checkGoCommand returns what is wrong with one command; checkable is false
// for commands it cannot check (placeholders, external modules, "./...").
func checkGoCommand(c goCommand, load func(dir string) (*pkgDecls, error)) (problems []string, checkable bool) {
	if strings.ContainsAny(c.line, "<>") {
		return nil, false // a placeholder such as -run=<Name>/<file>
	}
	sub, rest := c.args[0], c.args[1:]
	patterns := map[string]string{}
	var flagsGiven, pkgArgs []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "-") {
			if sub == "test" && !strings.HasPrefix(a, ".") {
				return nil, false // not a command: prose such as "the `go test fuzz v1` format"
			}
			pkgArgs = append(pkgArgs, a)
			if sub == "run" { // the program's own arguments follow
				for _, f := range rest[i+1:] {
					if strings.HasPrefix(f, "-") {
						flagsGiven = append(flagsGiven, strings.SplitN(strings.TrimLeft(f, "-"), "=", 2)[0])
					}
				}
				break
			}
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if sub == "test" && goTestValueFlags[name] && !hasVal && i+1 < len(rest) {
			val, i = rest[i+1], i+1
		}
		if name == "run" || name == "bench" || name == "fuzz" {
			patterns[name] = val
		}
	}
	if sub == "run" {
		if len(pkgArgs) == 0 || !strings.HasPrefix(pkgArgs[0], "./") {
			return nil, false // an external tool (go run module@version)
		}
		p, err := load(filepath.Clean(pkgArgs[0]))
		if err != nil {
			return []string{fmt.Sprintf("package %s: %v", pkgArgs[0], err)}, true
		}
		for _, f := range flagsGiven {
			if !p.flags[f] && f != "h" && f != "help" {
				problems = append(problems, fmt.Sprintf("%s defines no flag -%s", pkgArgs[0], f))
			}
		}
		return problems, true
	}
	if len(pkgArgs) == 0 {
		pkgArgs = []string{"."}
	}
	var decls []*pkgDecls
	for _, a := range pkgArgs {
		if strings.Contains(a, "...") {
			return nil, false
		}
		p, err := load(filepath.Clean(a))
		if err != nil {
			problems = append(problems, fmt.Sprintf("package %s: %v", a, err))
			continue
		}
		decls = append(decls, p)
	}
	for _, kind := range []string{"run", "bench", "fuzz"} {
		pat, ok := patterns[kind]
		if !ok || pat == "^$" || pat == "XXX" || pat == "." {
			continue
		}
		top := strings.SplitN(pat, "/", 2)[0]
		re, err := regexp.Compile(top)
		if err != nil {
			problems = append(problems, fmt.Sprintf("-%s %s: %v", kind, strconv.Quote(pat), err))
			continue
		}
		found := false
		for _, p := range decls {
			names := p.tests
			switch kind {
			case "bench":
				names = p.benches
			case "fuzz":
				names = p.fuzz
			case "run":
				names = append(append([]string(nil), p.tests...), p.fuzz...)
			}
			for _, n := range names {
				found = found || re.MatchString(n)
			}
		}
		if !found && len(decls) > 0 {
			problems = append(problems, fmt.Sprintf("-%s %s matches no function in %s", kind, strconv.Quote(pat), strings.Join(pkgArgs, " ")))
		}
	}
	return problems, true
}

// declsOf parses a package directory: its test, benchmark and fuzz
// functions and the flags its non-test files define.
func declsOf(dir string) (*pkgDecls, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go files in %s", dir)
	}
	p := &pkgDecls{flags: map[string]bool{}}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return nil, err
		}
		isTest := strings.HasSuffix(f, "_test.go")
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !isTest {
				continue
			}
			switch n := fn.Name.Name; {
			case strings.HasPrefix(n, "Test"):
				p.tests = append(p.tests, n)
			case strings.HasPrefix(n, "Benchmark"):
				p.benches = append(p.benches, n)
			case strings.HasPrefix(n, "Fuzz"):
				p.fuzz = append(p.fuzz, n)
			}
		}
		if isTest {
			continue
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !flagDefiners.MatchString(sel.Sel.Name) {
				return true
			}
			for _, a := range call.Args {
				if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						p.flags[s] = true
					}
					break
				}
			}
			return true
		})
	}
	return p, nil
}

// flagDefiners are the flag package's functions that define a flag; the
// first string literal among their arguments is the flag's name.
var flagDefiners = regexp.MustCompile(`^(Bool|Int|Int64|Uint|Uint64|String|Float64|Duration|Func|BoolFunc|TextVar|Var)(Var)?$`)
