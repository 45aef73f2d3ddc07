//go:build !unix

package server

import "os"

// lockFile does not lock on systems without flock(2): there, two nodes on one data
// dir are not detected.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) error { return nil }
