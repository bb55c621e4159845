package config

import (
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/errs"
)

// withTokens is twoEmbassies with api_token_env lines added to each
// embassy (my-kh first, kh-my second).
func withTokens(a, b string) string {
	text := strings.Replace(twoEmbassies, `secret_env = ["A_SECRET"]`, `secret_env = ["A_SECRET"]`+"\n"+a, 1)
	return strings.Replace(text, `secret_env = ["B_SECRET", "B_SECRET_NEW"]`, `secret_env = ["B_SECRET", "B_SECRET_NEW"]`+"\n"+b, 1)
}

const tokA, tokA2, tokB = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// TestAPITokens: every way api_token_env and its variables can be wrong
// fails naming the file, the key and the variable (never the value); a
// good configuration yields one token per variable, labelled by it.
func TestAPITokens(t *testing.T) {
	env := map[string]string{"A_TOK": tokA, "A_TOK_NEW": tokA2, "B_TOK": tokB, "SHORT": "tiny-token-value", "SAME_AS_A": tokA}
	cases := []struct {
		name, a, b string
		code       errs.Code
		want       string // in the message; "" for success
	}{
		{"OK", `api_token_env = ["A_TOK", "A_TOK_NEW"]`, `api_token_env = ["B_TOK"]`, "", ""},
		{"NoneIsFine", ``, ``, "", ""},
		{"BadName", `api_token_env = ["A-TOK"]`, ``, errs.EINVALID, `test.toml: embassy[0].api_token_env: "A-TOK" is not an environment variable name`},
		{"Twice", `api_token_env = ["A_TOK", "A_TOK"]`, ``, errs.ECONFLICT, `embassy[0].api_token_env: "A_TOK" is listed twice`},
		{"Unset", ``, `api_token_env = ["B_TOK", "UNSET_TOK"]`, errs.EMISSING, "test.toml: embassy[1].api_token_env: environment variable UNSET_TOK: not set"},
		{"Short", `api_token_env = ["SHORT"]`, ``, errs.EINVALID, "embassy[0].api_token_env: environment variable SHORT: the API token is shorter than 32"},
		{"VariableShared", `api_token_env = ["A_TOK"]`, `api_token_env = ["A_TOK"]`, errs.ECONFLICT, `embassy[1].api_token_env: environment variable A_TOK: also names a token of embassy "my-kh"`},
		{"TokenShared", `api_token_env = ["A_TOK"]`, `api_token_env = ["SAME_AS_A"]`, errs.ECONFLICT, `environment variable SAME_AS_A: holds the same token as one of embassy "my-kh"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("test.toml", withTokens(tc.a, tc.b))
			var toks []APIToken
			if err == nil {
				toks, err = LoadAPITokens(c, func(k string) string { return env[k] })
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, tk := range toks {
					if env[tk.Label] != string(tk.Secret) || (tk.Embassy == "my-kh") != strings.HasPrefix(tk.Label, "A_") {
						t.Errorf("token %s of %s does not match its variable", tk.Label, tk.Embassy)
					}
				}
				if strings.Contains(tc.a, "A_TOK_NEW") && len(toks) != 3 {
					t.Errorf("%d tokens, want 3", len(toks))
				}
				return
			}
			if err == nil || errs.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v (code %s), want %s containing %q", err, errs.ErrorCode(err), tc.code, tc.want)
			}
			for _, v := range []string{tokA, tokB, "tiny-token-value"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("the error shows a token: %v", err)
				}
			}
		})
	}
}
