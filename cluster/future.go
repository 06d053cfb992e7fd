package cluster

import (
	"reflect"

	"github.com/hashicorp/raft"
)

// bindShutdown makes f resolve (with raft.ErrRaftShutdown) once ch is
// closed, and reports whether it could.
//
// raft v1.8.0 does not answer every future when it shuts down: a command
// that was committed and queued for the FSM goroutine, or still queued for
// the main loop, when Shutdown stops those goroutines is dropped with its
// future, and Future.Error then blocks forever. raft's futures embed a
// deferError whose exported ShutdownCh field makes Error return
// ErrRaftShutdown once that channel closes, but raft fills it in for
// snapshot restores only. Node fills it in for every future it waits on,
// with a channel it closes once raft has shut down, so that no waiting
// goroutine outlives Close. The field is reached by reflection because
// the future types are unexported; TestBindShutdown fails if a raft
// upgrade moves it, in which case Node.await still returns (through its
// own check of the channel) but leaks the waiting goroutine.
//
// It must be called before f.Error, from the goroutine that calls it.
// raft never reads or writes ShutdownCh of these futures itself.
func bindShutdown(f raft.Future, ch chan struct{}) bool {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	field := v.Elem().FieldByName("ShutdownCh")
	if !field.IsValid() || !field.CanSet() || field.Type() != reflect.TypeFor[chan struct{}]() {
		return false
	}
	if field.IsNil() {
		field.Set(reflect.ValueOf(ch))
	}
	return true
}
