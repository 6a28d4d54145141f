package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/identity/httpapi"
)

// APIKeys returns the API key service over the App's store, sending its
// events to the App's receivers. A server must also run its Run loop, or
// last-used times are never written.
func (a *App) APIKeys() *identity.APIKeys {
	var events identity.EventSink
	if a.Events != nil {
		events = a.Events
	}
	return identity.NewAPIKeys(a.Store, a.Store, events, nil)
}

// apikey creates, lists or revokes API keys.
func (c *cli) apikey(ctx context.Context, sub string, args []string) error {
	f := newFlags("apikey " + sub)
	var (
		name    string
		scopes  []string
		expires string
		asJSON  bool
	)
	wantArgs := 1
	switch sub {
	case "create":
		f.fs.StringVar(&name, "name", "", "the key's name, unique among the user's keys")
		f.fs.StringSliceVar(&scopes, "scope", nil, "scope the key grants (repeatable or comma-separated)")
		f.fs.StringVar(&expires, "expires", "", "lifetime, e.g. 720h or 90d (default: never expires)")
		f.fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "list":
		f.fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "revoke":
	default:
		return usagef("apikey: unknown subcommand %q", sub)
	}
	rest, err := c.parse(f, args)
	if err != nil {
		return err
	}
	if len(rest) != wantArgs {
		return usagef("apikey %s needs exactly one argument", sub)
	}
	var ttl time.Duration
	if sub == "create" {
		if name == "" {
			return usagef("apikey create: --name is required")
		}
		if len(scopes) == 0 {
			return usagef("apikey create: at least one --scope is required (known: %s)", strings.Join(identity.KnownScopes(), ", "))
		}
		if expires != "" {
			if ttl, err = parseLifetime(expires); err != nil {
				return usagef("apikey create: --expires: %v", err)
			}
		}
	}
	app, err := c.open(ctx, f)
	if err != nil {
		return err
	}
	defer app.Close()
	keys := app.APIKeys()
	ctx = identity.WithActor(ctx, "cli", "")
	switch sub {
	case "create":
		u, err := app.Users.User(ctx, rest[0])
		if err != nil {
			return err
		}
		key, k, err := keys.Create(ctx, u.ID, name, scopes, ttl)
		if err != nil {
			return err
		}
		return c.printCreatedKey(u, key, k, asJSON)
	case "list":
		u, err := app.Users.User(ctx, rest[0])
		if err != nil {
			return err
		}
		list, err := keys.List(ctx, u.ID)
		if err != nil {
			return err
		}
		return c.listKeys(list, time.Now(), asJSON)
	}
	k, err := keys.Get(ctx, rest[0])
	if err != nil {
		return err
	}
	if err := keys.Revoke(ctx, k.ID); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "API key %s (%s) revoked\n", k.ID, k.Name)
	return nil
}

// parseLifetime reads a positive Go duration (720h, 90m) or a number of
// days (90d).
func parseLifetime(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days > 100*365 {
			return 0, fmt.Errorf("%q is not a lifetime (examples: 90d, 720h)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a lifetime (examples: 90d, 720h)", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive lifetime", s)
	}
	return d, nil
}

// keyTime formats an optional time for the table.
func keyTime(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format(time.RFC3339)
}

// printCreatedKey shows the new key, the one time it can be seen.
func (c *cli) printCreatedKey(u *identity.User, key string, k *identity.APIKey, asJSON bool) error {
	fmt.Fprintln(c.stderr, "users-core: store this API key now: it is not stored and will not be shown again")
	if asJSON {
		j := httpapi.KeyView(k, k.CreatedAt)
		j.Key = key
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(j)
	}
	fmt.Fprintf(c.stdout, "key:     %s\nid:      %s\nuser:    %s\nname:    %s\nscopes:  %s\nexpires: %s\n",
		key, k.ID, u.Username, k.Name, strings.Join(k.Scopes, " "), keyTime(k.ExpiresAt, "never"))
	return nil
}

// listKeys prints keys as a table or JSON; never a secret, which is not
// stored.
func (c *cli) listKeys(keys []*identity.APIKey, now time.Time, asJSON bool) error {
	if asJSON {
		out := make([]httpapi.KeyJSON, len(keys))
		for i, k := range keys {
			out[i] = httpapi.KeyView(k, now)
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tSTATUS")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, strings.Join(k.Scopes, ","),
			keyTime(k.CreatedAt, "-"), keyTime(k.ExpiresAt, "never"), keyTime(k.LastUsedAt, "never"), k.Status(now))
	}
	return tw.Flush()
}
