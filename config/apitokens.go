package config

import (
	"fmt"
	"strings"

	"github.com/checkinbot/checkinbot/errs"
)

// MinAPITokenLen is the shortest embassy API token accepted: 32 random
// characters are beyond guessing even with many tries a second.
const MinAPITokenLen = 32

// APIToken is one bearer token of the embassy API: the embassy it acts
// for, the label the audit trail records (the name of the environment
// variable holding it) and the secret itself.
type APIToken struct {
	Embassy string
	Label   string
	Secret  []byte
}

// validateAPITokenEnv checks one embassy's api_token_env: optional (an
// embassy without it has no API access), each entry a variable name,
// none twice.
func validateAPITokenEnv(key string, names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if !envName.MatchString(n) {
			return configError(errs.EINVALID, key, "%q is not an environment variable name", n)
		}
		if seen[n] {
			return configError(errs.ECONFLICT, key, "%q is listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// LoadAPITokens reads every embassy's API tokens (api_token_env). Every
// named variable must hold a token of at least MinAPITokenLen characters,
// and no token or variable may serve two embassies (a request must name
// exactly one embassy); errors name the key and the variable, never the
// value.
func LoadAPITokens(c *Config, getenv func(string) string) ([]APIToken, error) {
	var out []APIToken
	owner := map[string]string{} // variable or token → embassy
	for i, e := range c.Embassies {
		key := fmt.Sprintf("embassy[%d].api_token_env", i)
		for _, name := range e.APITokenEnv {
			v := strings.TrimSpace(getenv(name))
			bad := func(code errs.Code, reason string, args ...any) error {
				return &Error{Code: code, File: c.Name, Key: key, Reason: fmt.Sprintf("environment variable %s: ", name) + fmt.Sprintf(reason, args...)}
			}
			switch {
			case v == "":
				return nil, bad(errs.EMISSING, "not set: it must hold an API token of at least %d characters (for example: export %s=$(openssl rand -base64 32))", MinAPITokenLen, name)
			case len(v) < MinAPITokenLen:
				return nil, bad(errs.EINVALID, "the API token is shorter than %d characters", MinAPITokenLen)
			case owner["var:"+name] != "" && owner["var:"+name] != e.ID:
				return nil, bad(errs.ECONFLICT, "also names a token of embassy %q: give each embassy its own", owner["var:"+name])
			case owner["tok:"+v] != "" && owner["tok:"+v] != e.ID:
				return nil, bad(errs.ECONFLICT, "holds the same token as one of embassy %q: give each embassy its own", owner["tok:"+v])
			}
			owner["var:"+name], owner["tok:"+v] = e.ID, e.ID
			out = append(out, APIToken{Embassy: e.ID, Label: name, Secret: []byte(v)})
		}
	}
	return out, nil
}
