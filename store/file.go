package store

import "errors"

// Refusals of a data file (DESIGN §8). A damaged file must never cost data
// silently: every engine refuses an empty, foreign, truncated or corrupt
// file with a *FileError naming the file and the reason.

// The kinds of FileError. Test for them with errors.Is; the message is for
// people.
var (
	// ErrLocked: another process holds the data file (a running serve, or a
	// check in progress). Open waits one second for it.
	ErrLocked = errors.New("data file is in use by another checkinbot process")
	// ErrEmpty: the file exists with 0 bytes. It is not treated as new:
	// an emptied file (failed copy, full disk) would otherwise start over
	// without every registration and undelivered escalation.
	ErrEmpty = errors.New("data file is empty (0 bytes)")
	// ErrForeign: the file is not a checkinbot data file: not a bbolt
	// database, or another program's bbolt database.
	ErrForeign = errors.New("not a checkinbot data file")
	// ErrTruncated: the file is shorter than its own last commit says.
	ErrTruncated = errors.New("data file is truncated")
	// ErrCorrupt: pages or records of the file are damaged.
	ErrCorrupt = errors.New("data file is corrupt")
	// ErrFutureSchema: a newer checkinbot wrote the file; this one would
	// misread it.
	ErrFutureSchema = errors.New("data file was written by a newer checkinbot")
	// ErrReadOnly: the file, its directory or its file system cannot be
	// written.
	ErrReadOnly = errors.New("data file cannot be written (read-only)")
	// ErrNoDir: the directory of the data file does not exist.
	ErrNoDir = errors.New("directory of the data file does not exist")
	// ErrNotFound: there is no file to check (Check never creates one).
	ErrNotFound = errors.New("data file does not exist")
	// ErrIsDir: the path names a directory, not a file.
	ErrIsDir = errors.New("path of the data file is a directory")
	// ErrNoAccess: the file or its directory cannot be read.
	ErrNoAccess = errors.New("data file cannot be read (permission denied)")
	// ErrNeedKey: the file's records are encrypted and no master key was
	// given.
	ErrNeedKey = errors.New("data file is encrypted and no master key was given")
	// ErrWrongKey: the master key given did not encrypt the file.
	ErrWrongKey = errors.New("master key does not open the data file")
	// ErrIO: any other failure of the operating system (I/O error, disk full).
	ErrIO = errors.New("data file cannot be accessed")
)

// FileError is why a data file was refused. errors.Is(err, ErrEmpty) and
// the other kinds tell callers what happened; Err, when set, is the
// operating system's or bbolt's own error.
type FileError struct {
	Path   string
	Kind   error  // one of the Err… kinds above
	Reason string // the exact finding and what to do, for the operator
	Err    error
}

// Error is one line: the file, the kind, the reason.
func (e *FileError) Error() string {
	msg := "store: " + e.Path + ": " + e.Kind.Error()
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap makes both the kind and the cause visible to errors.Is and As.
func (e *FileError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}
