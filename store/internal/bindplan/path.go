package bindplan

import (
	"bytes"
	"encoding/json"
)

// EncodePath is the stored form of a binding's Path: a JSON array of its
// values in order, "[]" when there are none. Angle brackets stay
// unescaped, so the column reads like the header. It is the same text on
// every backend.
func EncodePath(p []string) (string, error) {
	if len(p) == 0 {
		return "[]", nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// DecodePath reads a Path stored by EncodePath back: nil when empty.
func DecodePath(b []byte) ([]string, error) {
	if len(b) == 0 || string(b) == "[]" {
		return nil, nil
	}
	var p []string
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, nil
	}
	return p, nil
}
