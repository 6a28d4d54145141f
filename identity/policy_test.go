package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestPasswordPolicyCheck(t *testing.T) {
	def := DefaultPasswordPolicy()
	if def.MinLength != 12 || def.MaxLength != 128 {
		t.Fatalf("DefaultPasswordPolicy() = %+v, want 12..128", def)
	}
	short8 := PasswordPolicy{MinLength: 8, MaxLength: 64}
	const (
		tooShort = "password must be at least 12 characters"
		tooLong  = "password must be at most 128 characters"
		isUser   = "password must not equal the username"
		common   = "password is too common (it appears in a list of common passwords)"
		badUTF8  = "password is not valid UTF-8"
		hasNUL   = "password must not contain a NUL character"
	)
	for _, tc := range []struct {
		name     string
		policy   PasswordPolicy
		username string
		password string
		want     string // "" means accepted
	}{
		{"exactly the minimum length is accepted", def, "alice", "zq7#Lm2vR9xw", ""},
		{"one below the minimum is refused", def, "alice", "zq7#Lm2vR9x", tooShort},
		{"the empty password is refused", def, "alice", "", tooShort},
		{"exactly the maximum length is accepted", def, "alice", strings.Repeat("xq", 64), ""},
		{"one above the maximum is refused", def, "alice", strings.Repeat("xq", 64) + "z", tooLong},
		{"a huge input is refused as too long", def, "alice", strings.Repeat("x", 1<<20), tooLong},
		{"length counts characters, not bytes: 12 two-byte letters pass", def, "alice", strings.Repeat("ü", 12), ""},
		{"length counts characters, not bytes: 11 two-byte letters fail", def, "alice", strings.Repeat("ü", 11), tooShort},
		{"128 four-byte characters pass", def, "alice", strings.Repeat("🔑", 128), ""},
		{"129 four-byte characters fail", def, "alice", strings.Repeat("🔑", 129), tooLong},
		{"the username itself is refused", def, "alice.example", "alice.example", isUser},
		{"the username in another case is refused", def, "alice.example", "ALICE.Example", isUser},
		{"a password containing the username is accepted", def, "alice", "alice-likes-long-walks", ""},
		{"a common password is refused", def, "alice", "winniethepooh", common},
		{"a common password in another case is refused", def, "alice", "WinnieThePooh", common},
		{"a common password under a shorter minimum is refused", short8, "alice", "password1", common},
		{"a common password in upper case under a shorter minimum is refused", short8, "alice", "PASSWORD1", common},
		{"another common password in mixed case is refused", short8, "alice", "QwertyUIOP", common},
		{"a NUL character is refused", def, "alice", "abcdefghijkl\x00mn", hasNUL},
		{"invalid UTF-8 is refused", def, "alice", "abcdefghijkl\xffmn", badUTF8},
		{"spaces and symbols are fine", def, "alice", "correct horse battery staple!", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Check(tc.username, tc.password)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check accepted, want %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) || ErrorField(err) != "password" {
				t.Errorf("error %v: want ErrInvalid with field password", err)
			}
			if got := ErrorMessage(err); got != tc.want {
				t.Errorf("message %q, want %q", got, tc.want)
			}
			if tc.password != "" && len(tc.password) < 1000 && strings.Contains(err.Error(), tc.password) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestCommonPasswordList(t *testing.T) {
	set := commonPasswords()
	if len(set) < 1000 {
		t.Fatalf("common password list has %d entries, want at least 1000", len(set))
	}
	for _, pw := range []string{"123456", "password", "password1", "qwerty", "winniethepooh", "qwertyuiop"} {
		if _, ok := set[pw]; !ok {
			t.Errorf("%q missing from the common password list", pw)
		}
	}
	for pw := range set {
		if pw == "" || pw != strings.ToLower(pw) || strings.HasPrefix(pw, "#!") {
			t.Errorf("bad list entry %q", pw)
		}
	}
	if !strings.Contains(commonPasswordsFile, "It is assumed to be in the public domain.") {
		t.Error("the list lost its source and licence header")
	}
}

func TestPasswordPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    PasswordPolicy
		ok   bool
	}{
		{"the default is valid", DefaultPasswordPolicy(), true},
		{"a minimum of 1 is valid", PasswordPolicy{1, 10}, true},
		{"a minimum of 0 is refused", PasswordPolicy{0, 10}, false},
		{"a negative minimum is refused", PasswordPolicy{-1, 10}, false},
		{"a maximum of 1024 is valid", PasswordPolicy{12, 1024}, true},
		{"a maximum above 1024 is refused", PasswordPolicy{12, 1025}, false},
		{"min equal to max is valid", PasswordPolicy{16, 16}, true},
		{"min above max is refused", PasswordPolicy{17, 16}, false},
		{"the zero policy is refused", PasswordPolicy{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.ok != (err == nil) {
				t.Errorf("Validate(%+v) = %v", tc.p, err)
			}
			if err != nil && (!errors.Is(err, ErrInvalid) || ErrorField(err) != "password_policy") {
				t.Errorf("error %v: want ErrInvalid with field password_policy", err)
			}
		})
	}
}
