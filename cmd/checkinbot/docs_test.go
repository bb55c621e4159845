package main

// Tests that keep the documentation honest: the first-delivery walk-through
// runs literally, every Markdown table renders, every configuration key the
// parser accepts is documented (and nothing else), every environment
// variable a doc names is one something reads, and the example
// configuration is complete enough for `serve`.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/build"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/webhook"
)

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = "../.."

// exampleConfigFor returns checkinbot.example.toml with every embassy
// delivering to url, signed with the secret in the environment variable
// secretEnv, and no secondary URL or partner: what a test that runs the
// real program against one local receiver needs. With url "", every
// embassy is pull_only instead: serve accepts it and keeps its events in
// the outbox, and the demo delivers them to its own sink.
// It edits the decoded file, not its text, so it keeps working when the
// example's comments or layout change.
func exampleConfigFor(tb testing.TB, url, secretEnv string) string {
	tb.Helper()
	var doc map[string]any
	if _, err := toml.DecodeFile(filepath.Join(repoRoot, "checkinbot.example.toml"), &doc); err != nil {
		tb.Fatal(err)
	}
	embassies, ok := doc["embassy"].([]map[string]any)
	if !ok || len(embassies) == 0 {
		tb.Fatalf("checkinbot.example.toml: no [[embassy]] tables (got %T)", doc["embassy"])
	}
	for _, e := range embassies {
		delete(e, "secondary_url")
		delete(e, "partner")
		delete(e, "pull_only")
		delete(e, "webhook_url")
		delete(e, "secret_env")
		if url == "" {
			e["pull_only"] = true
			continue
		}
		e["webhook_url"] = url
		e["secret_env"] = []string{secretEnv}
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

// docFiles are every Markdown file an operator or embassy reads.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	return append(files, filepath.Join(repoRoot, "README.md"))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fencedBlock matches a fenced code block and its info string.
var fencedBlock = regexp.MustCompile("(?ms)^```([a-z]*)[^\n]*\n(.*?)^```")

// shellBlocks returns the bodies of the ```sh and ```bash blocks of a
// Markdown text, in order.
func shellBlocks(md string) []string {
	var out []string
	for _, m := range fencedBlock.FindAllStringSubmatch(md, -1) {
		if m[1] == "sh" || m[1] == "bash" {
			out = append(out, m[2])
		}
	}
	return out
}

// mdTable is one Markdown table: the heading it sits under, its first
// line number and its rows split into cells (the delimiter row included,
// as rows[1]).
type mdTable struct {
	heading string
	line    int
	rows    [][]string
}

// splitRow splits a table row on unescaped pipes, dropping the outer ones.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	if strings.HasSuffix(line, "|") && !strings.HasSuffix(line, `\|`) {
		line = line[:len(line)-1]
	}
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteString(`\|`)
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// tables finds every run of lines starting with "|" outside code blocks.
func tables(md string) []mdTable {
	var out []mdTable
	var cur *mdTable
	heading, inCode := "", false
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(trimmed, "|") {
			cur = nil
			if !inCode && strings.HasPrefix(trimmed, "#") {
				heading = strings.TrimSpace(strings.TrimLeft(trimmed, "#"))
			}
			continue
		}
		if cur == nil {
			out = append(out, mdTable{heading: heading, line: i + 1})
			cur = &out[len(out)-1]
		}
		cur.rows = append(cur.rows, splitRow(line))
	}
	return out
}

var delimiterCell = regexp.MustCompile(`^:?-+:?$`)

// tableProblem says why a table would not render as one, or "".
func tableProblem(tb mdTable) string {
	if len(tb.rows) < 2 {
		return "a lone table row: no header and delimiter row, so it renders as text"
	}
	n := len(tb.rows[0])
	for _, c := range tb.rows[1] {
		if !delimiterCell.MatchString(c) {
			return "the second row is not a delimiter row (|---|---|), so it renders as text"
		}
	}
	for i, r := range tb.rows {
		if len(r) != n {
			return "row " + strconv.Itoa(i+1) + " has " + strconv.Itoa(len(r)) + " cells, the header " + strconv.Itoa(n)
		}
	}
	return ""
}

// TestDocTablesRender checks every table of every doc: a header, a
// delimiter row, and the header's column count on every row. A table cut
// in two by a blank line, as configuration.md's [[embassy]] table once
// was, fails here.
func TestDocTablesRender(t *testing.T) {
	for _, f := range docFiles(t) {
		for _, tb := range tables(readFile(t, f)) {
			if p := tableProblem(tb); p != "" {
				t.Errorf("%s:%d (under %q): %s", f, tb.line, tb.heading, p)
			}
		}
	}
}

// TestTableProblemCatchesBrokenTables shows the checker can fail.
func TestTableProblemCatchesBrokenTables(t *testing.T) {
	for _, c := range []struct{ name, md string }{
		{"lone row", "| `a` | b |\n"},
		{"no delimiter", "| a | b |\n| c | d |\n"},
		{"short row", "| a | b |\n|---|---|\n| c |\n"},
		{"long row", "| a | b |\n|---|---|\n| c | d | e |\n"},
	} {
		tbs := tables(c.md)
		if len(tbs) != 1 || tableProblem(tbs[0]) == "" {
			t.Errorf("%s: not reported", c.name)
		}
	}
	if tbs := tables("| a | b \\| c |\n|---|:-:|\n| `x` | y |\n"); len(tbs) != 1 || tableProblem(tbs[0]) != "" {
		t.Errorf("a good table is reported: %v", tbs)
	}
}

// parserKeys lists every key config.Config accepts, dotted by table
// ("checkin.remind_after", "embassy.partner.url"), from its TOML tags.
func parserKeys(prefix string, typ reflect.Type) []string {
	var keys []string
	for f := range typ.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()) {
			keys = append(keys, parserKeys(key, ft)...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// tableName reads the TOML table a configuration.md heading documents:
// "Top level" is the root, "`[checkin]`" is checkin, "`[[embassy.partner]]`"
// is embassy.partner; other headings document no keys.
func tableName(heading string) (string, bool) {
	if heading == "Top level" {
		return "", true
	}
	m := regexp.MustCompile("^`\\[\\[?([a-z_.]+)\\]\\]?`$").FindStringSubmatch(heading)
	if m == nil {
		return "", false
	}
	return m[1], true
}

var keyCell = regexp.MustCompile("^`([a-z][a-z0-9_]*)`$")

// documentedKeys lists the keys configuration.md's tables document.
func documentedKeys(t *testing.T, md string) []string {
	var keys []string
	for _, tb := range tables(md) {
		table, ok := tableName(tb.heading)
		if !ok || len(tb.rows) < 3 {
			continue
		}
		for _, r := range tb.rows[2:] {
			m := keyCell.FindStringSubmatch(r[0])
			if m == nil {
				t.Errorf("configuration.md:%d (under %q): first cell %q is not a `key`", tb.line, tb.heading, r[0])
				continue
			}
			if table != "" {
				m[1] = table + "." + m[1]
			}
			keys = append(keys, m[1])
		}
	}
	return keys
}

// keyDrift compares documented keys with the parser's: undocumented are
// keys the parser accepts that no table lists; unknown are documented keys
// the parser would refuse.
func keyDrift(documented, accepted []string) (undocumented, unknown []string) {
	for _, k := range accepted {
		if !slices.Contains(documented, k) {
			undocumented = append(undocumented, k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(accepted, k) {
			unknown = append(unknown, k)
		}
	}
	return undocumented, unknown
}

// TestConfigurationDocumentsEveryKey keeps docs/configuration.md and the
// parser from drifting apart, in both directions.
func TestConfigurationDocumentsEveryKey(t *testing.T) {
	accepted := parserKeys("", reflect.TypeFor[config.Config]())
	if !slices.Contains(accepted, "embassy.pull_only") || !slices.Contains(accepted, "embassy.partner.secret_env") {
		t.Fatalf("parserKeys misses keys: %v", accepted)
	}
	documented := documentedKeys(t, readFile(t, filepath.Join(repoRoot, "docs", "configuration.md")))
	undocumented, unknown := keyDrift(documented, accepted)
	for _, k := range undocumented {
		t.Errorf("docs/configuration.md does not document %q, which the parser accepts", k)
	}
	for _, k := range unknown {
		t.Errorf("docs/configuration.md documents %q, which the parser refuses", k)
	}
	// The comparison itself can fail: a key taken out of the documented
	// list is reported, and so is one the parser does not know.
	if u, _ := keyDrift(slices.DeleteFunc(slices.Clone(documented), func(k string) bool { return k == "embassy.secret_env" }), accepted); !slices.Contains(u, "embassy.secret_env") {
		t.Errorf("a missing key is not reported: %v", u)
	}
	if _, x := keyDrift(append(slices.Clone(documented), "embassy.webhook_secret"), accepted); !slices.Contains(x, "embassy.webhook_secret") {
		t.Errorf("an unknown key is not reported: %v", x)
	}
}

var (
	getenvCall   = regexp.MustCompile(`os\.(?:Getenv|LookupEnv)\("([A-Za-z_][A-Za-z0-9_]*)"\)`)
	checkinVar   = regexp.MustCompile(`\bCHECKIN_[A-Z0-9_]+\b`)
	exportedVar  = regexp.MustCompile(`(?m)\bexport\s+([A-Za-z_][A-Za-z0-9_]*)=`)
	secretEnvVal = regexp.MustCompile(`(?:secret_env\s*=\s*\[([^\]]*)\]|webhook_secret_env\s*=\s*"([^"]*)"|--secret-env\s+"?([A-Za-z_][A-Za-z0-9_]*))`)
	quotedName   = regexp.MustCompile(`"([A-Za-z_][A-Za-z0-9_]*)"`)
)

// readVariables lists the environment variables the program reads by a
// fixed name: every os.Getenv/LookupEnv literal in the files a default
// build compiles (not tests, not files behind a build tag such as a
// test-only fault injection).
func readVariables(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if ok, err := build.Default.MatchFile(filepath.Dir(path), d.Name()); err != nil || !ok {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "\n\t\"testing\"\n") {
			return nil // test support (testkit, providertest): not the program
		}
		for _, m := range getenvCall.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// namedByConfig lists the variables a text names as secret holders in
// configuration (secret_env, webhook_secret_env) or for the sink
// (--secret-env): those are read because the configuration says so.
func namedByConfig(text string) map[string]bool {
	names := map[string]bool{}
	for _, m := range secretEnvVal.FindAllStringSubmatch(text, -1) {
		for _, q := range quotedName.FindAllStringSubmatch(m[1], -1) {
			names[q[1]] = true
		}
		if m[2] != "" {
			names[m[2]] = true
		}
		if m[3] != "" {
			names[m[3]] = true
		}
	}
	return names
}

// variableProblems lists the variables a doc names that nothing reads:
// a CHECKIN_ name the program does not read and the doc's configuration
// does not name, or an exported variable that neither the program, the
// doc's configuration nor the example configuration names.
func variableProblems(doc string, read, example map[string]bool) []string {
	named := namedByConfig(doc)
	var out []string
	for _, v := range checkinVar.FindAllString(doc, -1) {
		if !read[v] && !named[v] && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, m := range exportedVar.FindAllStringSubmatch(doc, -1) {
		if v := m[1]; !read[v] && !named[v] && !example[v] && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// TestDocsNameOnlyVariablesSomethingReads checks every environment
// variable in every doc and in the example configuration against the
// code, and that configuration.md lists every variable the code reads.
func TestDocsNameOnlyVariablesSomethingReads(t *testing.T) {
	read := readVariables(t)
	for _, want := range []string{"CHECKIN_PEPPER", "CHECKIN_TELEGRAM_TOKEN"} {
		if !read[want] {
			t.Fatalf("readVariables misses %s: %v", want, read)
		}
	}
	exampleText := readFile(t, filepath.Join(repoRoot, "checkinbot.example.toml"))
	example := namedByConfig(exampleText)
	for _, f := range append(docFiles(t), filepath.Join(repoRoot, "checkinbot.example.toml")) {
		for _, v := range variableProblems(readFile(t, f), read, example) {
			t.Errorf("%s names the environment variable %s, which nothing reads", f, v)
		}
	}
	// The check can fail: the variable docs/telegram.md once exported.
	if p := variableProblems("export CHECKIN_WEBHOOK_SECRET_MY=whsec_...", read, example); !slices.Equal(p, []string{"CHECKIN_WEBHOOK_SECRET_MY"}) {
		t.Errorf("an unread variable is not reported: %v", p)
	}
	var env string
	for _, tb := range tables(readFile(t, filepath.Join(repoRoot, "docs", "configuration.md"))) {
		if tb.heading == "Environment" {
			for _, r := range tb.rows {
				env += r[0] + "\n"
			}
		}
	}
	for v := range read {
		if !strings.Contains(env, "`"+v+"`") {
			t.Errorf("docs/configuration.md's Environment table does not list %s, which the program reads", v)
		}
	}
}

// TestExampleConfigIsComplete checks that the example an operator copies
// shows a complete embassy (webhook_url, secondary_url, secret_env mid-
// rotation, a partner), passes `config check`, and satisfies serve's
// start-up check once its secrets are set.
func TestExampleConfigIsComplete(t *testing.T) {
	path := filepath.Join(repoRoot, "checkinbot.example.toml")
	if code, out, errOut := runMain(t, "", "config", "check", path); code != 0 || !strings.Contains(out, ": ok (") {
		t.Fatalf("config check %s: exit %d %s %s", path, code, out, errOut)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	complete := false
	for _, e := range c.Embassies {
		if e.WebhookURL != "" && e.SecondaryURL != "" && len(e.SecretEnv) >= 2 && len(e.Partners) > 0 {
			complete = true
		}
	}
	if !complete {
		t.Error("no embassy in the example has webhook_url, secondary_url, two secret_env names and a partner")
	}
	secret := webhook.FormatSecret(bytes.Repeat([]byte{7}, 32))
	endpoints, err := c.Endpoints(func(string) string { return secret }, true)
	if err != nil {
		t.Fatalf("serve's start-up check refuses the example: %v", err)
	}
	embassies := map[string]bool{}
	for _, ep := range endpoints {
		embassies[ep.Embassy] = true
	}
	for _, e := range c.Embassies {
		if !embassies[e.ID] && !e.PullOnly {
			t.Errorf("embassy %s has no endpoint", e.ID)
		}
	}
}

// TestServeRefusesEmbassyWithoutReceiver runs `serve` on configurations
// where an embassy has no webhook_url: refused, naming the file, the key
// and the embassy, before any data file is created, unless the embassy
// says pull_only = true.
func TestServeRefusesEmbassyWithoutReceiver(t *testing.T) {
	t.Setenv("CHECKIN_PEPPER", strings.Repeat("p", 40))
	t.Setenv("CHECKIN_MASTER_KEY", testMasterKey)
	// A channel, so the embassy check is reached; a local Bot API, so that
	// a serve that wrongly starts talks to nothing outside this machine.
	api := fakeapi.New("42:refusal-test")
	defer api.Close()
	t.Setenv("CHECKIN_TELEGRAM_TOKEN", api.Token)
	t.Setenv("CHECKIN_TELEGRAM_API_URL", api.URL)
	t.Setenv("DOCS_TEST_SECRET", webhook.FormatSecret(bytes.Repeat([]byte{9}, 32)))
	base := exampleConfigFor(t, "http://127.0.0.1:9/", "DOCS_TEST_SECRET")
	var doc map[string]any
	if _, err := toml.Decode(base, &doc); err != nil {
		t.Fatal(err)
	}
	embassies := doc["embassy"].([]map[string]any)
	for i, e := range embassies {
		id := e["id"].(string)
		for _, c := range []struct {
			name string
			edit func(map[string]any)
			want []string
		}{
			{"NoURL", func(e map[string]any) { delete(e, "webhook_url"); delete(e, "secret_env") },
				[]string{"checkinbot.toml: embassy[" + strconv.Itoa(i) + "].webhook_url: missing for embassy \"" + id + "\"", "pull_only = true"}},
			{"PullOnlyAndURL", func(e map[string]any) { e["pull_only"] = true },
				[]string{"checkinbot.toml: embassy[" + strconv.Itoa(i) + "].pull_only: embassy \"" + id + "\" is pull_only but"}},
			{"UnsetSecret", func(e map[string]any) { e["secret_env"] = []string{"DOCS_TEST_UNSET"} },
				[]string{"checkinbot.toml: embassy[" + strconv.Itoa(i) + "].secret_env: environment variable DOCS_TEST_UNSET is not set"}},
		} {
			t.Run(id+"/"+c.name, func(t *testing.T) {
				edited := map[string]any{}
				for k, v := range doc {
					edited[k] = v
				}
				es := make([]map[string]any, len(embassies))
				for j, e := range embassies {
					es[j] = map[string]any{}
					for k, v := range e {
						es[j][k] = v
					}
				}
				c.edit(es[i])
				edited["embassy"] = es
				dir := t.TempDir()
				cfg := filepath.Join(dir, "checkinbot.toml")
				var b bytes.Buffer
				if err := toml.NewEncoder(&b).Encode(edited); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(cfg, b.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
				// A serve that wrongly starts runs until this deadline.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := serve(ctx, []string{"--config", cfg, "--data-dir", dir}, io.Discard)
				if ctx.Err() != nil || err == nil {
					t.Fatalf("serve started (%v)", err)
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), strings.Replace(w, "checkinbot.toml", cfg, 1)) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				if _, err := os.Stat(filepath.Join(dir, "checkinbot.db")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused serve touched the data file: %v", err)
				}
			})
		}
	}
}

// TestServeAcceptsPullOnlyEmbassy: with every embassy pull_only, serve
// passes the start-up check and runs (until the test stops it).
func TestServeAcceptsPullOnlyEmbassy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts serve")
	}
	api := fakeapi.New("42:pull-only-test")
	defer api.Close()
	t.Setenv("CHECKIN_PEPPER", strings.Repeat("p", 40))
	t.Setenv("CHECKIN_MASTER_KEY", testMasterKey)
	t.Setenv("CHECKIN_TELEGRAM_TOKEN", api.Token)
	t.Setenv("CHECKIN_TELEGRAM_API_URL", api.URL)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "checkinbot.toml")
	text := exampleConfigFor(t, "", "")
	if !strings.Contains(text, "pull_only = true") {
		t.Fatalf("not a pull-only configuration:\n%s", text)
	}
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--config", cfg, "--data-dir", dir}, os.Stderr) }()
	// serve has passed its start-up checks once it opened the data file.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, "checkinbot.db")); err == nil {
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestFirstDeliveryDoc runs every sh block of docs/first-delivery.md,
// literally and in order, with bash in an empty directory and a freshly
// built checkinbot on PATH, and checks that the sink the doc starts
// received, verified, the registration.created the doc promises.
func TestFirstDeliveryDoc(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the walk-through")
	}
	// The walk-through uses port 8080, as a reader would.
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Skipf("127.0.0.1:8080, which the walk-through uses, is taken: %v", err)
	}
	ln.Close()

	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "checkinbot"), ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	blocks := shellBlocks(readFile(t, filepath.Join(repoRoot, "docs", "first-delivery.md")))
	if len(blocks) < 4 {
		t.Fatalf("docs/first-delivery.md has %d sh blocks", len(blocks))
	}
	home := filepath.Join(work, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	out := runDocScript(t, home, bin, strings.Join(blocks, "\n"))

	events := filepath.Join(home, "first-delivery", "events.jsonl")
	f, err := os.Open(events)
	if err != nil {
		t.Fatalf("the sink wrote nothing: %v\n%s", err, out)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			ID         string         `json:"id"`
			Type       string         `json:"type"`
			EmbassyID  string         `json:"embassy_id"`
			Registrant map[string]any `json:"registrant"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("events.jsonl: %v: %s", err, sc.Text())
		}
		got = append(got, ev.Type)
		if ev.Type == "registration.created" && (ev.EmbassyID == "" || ev.Registrant["name"] != "Siti Aminah") {
			t.Errorf("registration.created lacks the embassy or the registrant: %s", sc.Text())
		}
	}
	if !slices.Contains(got, "registration.created") {
		t.Fatalf("the sink received %v, not registration.created\n%s", got, out)
	}
	// The sink accepted it (it writes only verified events) and said so.
	if !regexp.MustCompile(`(?m)^registration\.created evt_\S+ case=- severity=info embassy=\S+$`).MatchString(out) {
		t.Errorf("no sink summary line for registration.created in the output:\n%s", out)
	}
}

// runDocScript runs script with bash -e -o pipefail in dir, with bin first
// on PATH, none of checkinbot's variables set, TMPDIR inside the test's
// directory, and the whole process group killed at the end whatever the
// script left running.
func runDocScript(t *testing.T, dir, bin, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	tmp := filepath.Join(dir, ".tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CHECKIN_") || name == "EMBASSY_SECRET" || name == "PATH" || name == "TMPDIR" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	err := cmd.Wait()
	_ = syscall.Kill(-pid, syscall.SIGKILL) // a sink the doc failed to stop
	if err != nil {
		t.Fatalf("the documented steps failed: %v\n%s", err, out.String())
	}
	return out.String()
}
