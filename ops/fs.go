package ops

import (
	"errors"
	"io/fs"
	"os"
)

// removeSocket removes a stale unix socket left by a process that died,
// and nothing else.
func removeSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return errors.New("exists and is not a socket")
	}
	return os.Remove(path)
}

func chmod(path string, mode fs.FileMode) error { return os.Chmod(path, mode) }
