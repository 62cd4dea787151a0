// Package runsc pins the version of gVisor's runsc that runs standin's
// sandboxes; it has no code of its own.
//
// `make runsc` builds bin/runsc from here, with the Sentry's seccomp
// programs precompiled in (see seccompgen): it vendors the pinned sources
// into a scratch directory, replaces gVisor's empty
// runsc/boot/filter/filter_precompiled.go there with seccompgen's output,
// and builds with CGO_ENABLED=0 -mod=vendor. A plain
//
//	cd tools/runsc && CGO_ENABLED=0 go build -o ../../bin/runsc gvisor.dev/gvisor/runsc
//
// gives a runsc that works the same but builds its filter at every sandbox
// start (about 60 ms of CPU here).
//
// This is a module of its own so that runsc's dependencies stay out of the
// main module. go.mod's godebug block keeps Go from updating GOMAXPROCS
// from the CPU affinity at run time: the gofer's seccomp filter does not
// allow sched_getaffinity, and it dies of SIGSYS otherwise. To move to
// another gVisor version, change the require line, run `go mod tidy` here,
// and run the internal/sandbox/gvisor tests.
package runsc
