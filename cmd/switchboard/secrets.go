package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Secrets kept off the command line. A node's command line is readable by
// every local user (ps, /proc/PID/cmdline) and ends up in process listings
// and crash reports, so each secret flag has a file form, and both read the
// environment:
//
//	--jwt-secret  SWITCHBOARD_JWT_SECRET   --jwt-secret-file  SWITCHBOARD_JWT_SECRET_FILE
//	--api-key     SWITCHBOARD_API_KEY      --api-key-file     SWITCHBOARD_API_KEY_FILE
//
// A secret and its file form are one setting: given both ways, the node
// refuses to start, and when either is on the command line the environment
// variables of both are not read (the command line wins, as for every flag).

// secretFileFlags maps each file flag to the flag whose value it supplies.
var secretFileFlags = map[string]string{
	"jwt-secret-file": "jwt-secret",
	"api-key-file":    "api-key",
}

// maxSecretFileBytes bounds what a secret file may hold: a secret is a few
// dozen bytes; a bigger file is the wrong file.
const maxSecretFileBytes = 64 << 10

// secretPartner is the other flag of a secret's pair ("" for other flags).
func secretPartner(name string) string {
	if v, ok := secretFileFlags[name]; ok {
		return v
	}
	for file, v := range secretFileFlags {
		if v == name {
			return file
		}
	}
	return ""
}

// loadSecretFiles reads each secret file given into its secret. fromEnv
// holds the flags whose value came from the environment, so that an error
// names where the setting was made.
func (o *options) loadSecretFiles(fromEnv map[string]bool) error {
	return errors.Join(
		loadSecretFile(&o.jwtSecret, o.jwtSecretFile, "jwt-secret", fromEnv),
		loadSecretFile(&o.apiKey, o.apiKeyFile, "api-key", fromEnv),
	)
}

func loadSecretFile(secret *string, path, name string, fromEnv map[string]bool) error {
	if path == "" {
		return nil
	}
	fileFlag := secretPartner(name)
	if *secret != "" {
		return fmt.Errorf("%s and %s are both set: give the secret one way", flagRef(name, fromEnv), flagRef(fileFlag, fromEnv))
	}
	s, err := readSecretFile(path)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flagRef(fileFlag, fromEnv), path, err)
	}
	*secret = s
	return nil
}

// readSecretFile returns the file's content without its trailing line
// breaks (what echo and most secret stores add).
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", pathless(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", pathless(err)
	}
	if len(b) > maxSecretFileBytes {
		return "", fmt.Errorf("larger than %d KiB: not a secret", maxSecretFileBytes>>10)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", errors.New("the file is empty")
	}
	return s, nil
}

// pathless drops the path from a *fs.PathError: the caller names it once.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// flagRef names a flag as the operator set it.
func flagRef(name string, fromEnv map[string]bool) string {
	if fromEnv[name] {
		return "--" + name + " (" + envName(name) + ")"
	}
	return "--" + name
}
