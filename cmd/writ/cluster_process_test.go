package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/issuer"
)

// TestClusterProcesses runs the README's three-node walk-through with the
// built binary as separate processes (ports replaced by free ones), then
// joins a fourth node, pauses the leader with SIGSTOP past the election
// timeout (the others go on; the thawed node follows and catches up),
// kills the leader with SIGKILL and mints on.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the writ binary")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## A three-node cluster.*?```bash\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no three-node cluster block")
	}
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "writ"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Chdir(dir)
	if err := prepareDevDir(filepath.Join(dir, ".writ-dev"), freeAddr(t), freeAddr(t), time.Now()); err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	for _, p := range regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllString(string(m[1]), -1) {
		if ports[p] == "" {
			ports[p] = freeAddr(t)
		}
	}
	rewrite := func(s string) string {
		for from, to := range ports {
			s = strings.ReplaceAll(s, from, to)
		}
		return s
	}

	procs := map[string]*exec.Cmd{} // node id → process
	logs := map[string]*bytes.Buffer{}
	t.Cleanup(func() {
		for id, p := range procs {
			p.Process.Kill()
			p.Wait()
			if t.Failed() {
				t.Logf("%s log:\n%s", id, logs[id].String())
			}
		}
	})
	vars := map[string]string{}
	expand := func(words []string) []string {
		var out []string
		for _, w := range words {
			if strings.HasPrefix(w, "$") {
				out = append(out, strings.Fields(vars[w[1:]])...)
			} else {
				out = append(out, w)
			}
		}
		return out
	}
	start := func(args []string) {
		id := args[indexOf(args, "--node-id")+1]
		cmd := exec.Command("./bin/writ", args...)
		logs[id] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = logs[id], logs[id]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[id] = cmd
	}
	// run retries a command for a while: the nodes it talks to may still
	// be starting or electing.
	run := func(args []string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var out, errb bytes.Buffer
			cmd := exec.Command("./bin/writ", args...)
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err == nil {
				return out.String()
			} else if time.Now().After(deadline) {
				t.Fatalf("writ %s: %v\n%s", strings.Join(args, " "), err, errb.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, line := range strings.Split(rewrite(string(m[1])), "\n") {
		line = strings.TrimSpace(line)
		if v := regexp.MustCompile(`^([A-Z]+)="(.*)"$`).FindStringSubmatch(line); v != nil {
			vars[v[1]] = v[2]
			continue
		}
		if !strings.HasPrefix(line, "./bin/writ ") {
			continue
		}
		args := expand(strings.Fields(strings.TrimSuffix(line, "&"))[1:])
		if strings.HasSuffix(line, "&") {
			start(args)
			continue
		}
		run(args)
	}
	admin := expand([]string{"$A"})
	status := func(server string) issuer.ClusterStatus {
		var st issuer.ClusterStatus
		if err := json.Unmarshal([]byte(run(append([]string{"cluster", "status", "--server", server}, admin...))), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	api := func(id string) string {
		return ports[map[string]string{"writ-1": "127.0.0.1:8451", "writ-2": "127.0.0.1:8452", "writ-3": "127.0.0.1:8453"}[id]]
	}
	waitStatus := func(server string, ok func(issuer.ClusterStatus) bool) issuer.ClusterStatus {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := status(server)
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("status at %s: %+v", server, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitStatus("https://"+api("writ-1"), func(st issuer.ClusterStatus) bool { return st.Voters == 2 && len(st.Removed) == 1 })

	// A fourth node joins, so that the cluster survives losing its leader.
	n4, r4 := freeAddr(t), freeAddr(t)
	start([]string{"server", "--config", ".writ-dev/server.yaml", "--node-id", "writ-4", "--listen", n4, "--raft-listen", r4, "--data-dir", ".writ-dev/n4", "--no-bootstrap"})
	run(append([]string{"cluster", "join", "--server", "https://" + api("writ-2"), "--node-id", "writ-4", "--raft-addr", r4, "--api-addr", n4}, admin...))
	// writ-4 learns the configuration from the leader shortly after the join.
	st := waitStatus("https://"+n4, func(st issuer.ClusterStatus) bool { return st.Voters == 3 && st.Leader != "" })
	apiOf := func(id string) string {
		if id == "writ-4" {
			return "https://" + n4
		}
		return "https://" + api(id)
	}

	// The leader freezes (SIGSTOP) past the election timeout: the others
	// elect a new leader and take a token request and a revocation; when
	// it thaws it follows the new leader and holds the revocation.
	paused := st.Leader
	if err := procs[paused].Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { procs[paused].Process.Signal(syscall.SIGCONT) }) // before the kill at cleanup
	frozen := time.Now()
	other := apiOf("writ-4")
	if paused == "writ-4" {
		other = apiOf("writ-2")
	}
	run([]string{"token", "mint", "--server", other, "--bundle", ".writ-dev/ca/ca.pem",
		"--svid", ".writ-dev/svids/support.pem", "--svid-key", ".writ-dev/svids/support-key.pem", "--right", "crm/contacts:read"})
	t.Logf("leader %s paused → next token minted at %s after %v", paused, other, time.Since(frozen).Round(time.Millisecond))
	const revokedID = "5eed0000000000000000000000000001"
	run(append([]string{"revoke", "--token-id", revokedID, "--reason", "paused-leader-drill", "--server", other}, admin...))
	if wait := 2*time.Second - time.Since(frozen); wait > 0 {
		time.Sleep(wait) // well past the election timeout
	}
	if err := procs[paused].Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitStatus(apiOf(paused), func(st issuer.ClusterStatus) bool { return st.Leader != "" && st.Leader != paused })
	if list := run(append([]string{"revocations", "list", "--server", apiOf(paused)}, admin...)); !strings.Contains(list, revokedID) {
		t.Fatalf("thawed %s does not list the revocation made while it was paused: %s", paused, list)
	}
	st = waitStatus("https://"+n4, func(st issuer.ClusterStatus) bool { return st.Leader != "" })
	leader := st.Leader
	if err := procs[leader].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	procs[leader].Wait()
	delete(procs, leader)
	survivor := "https://" + n4
	if leader == "writ-4" {
		survivor = "https://" + api("writ-2")
	}
	killed := time.Now()
	out := run([]string{"token", "mint", "--server", survivor, "--bundle", ".writ-dev/ca/ca.pem",
		"--svid", ".writ-dev/svids/support.pem", "--svid-key", ".writ-dev/svids/support-key.pem", "--right", "crm/contacts:read"})
	t.Logf("leader %s SIGKILLed → next token minted at %s after %v", leader, survivor, time.Since(killed).Round(time.Millisecond))
	if len(strings.TrimSpace(out)) < 100 {
		t.Fatalf("mint after failover printed %q", out)
	}
	waitStatus(survivor, func(st issuer.ClusterStatus) bool { return st.Leader != leader && st.Leader != "" })
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// BenchmarkFailover kills the leader of a three-process cluster with
// SIGKILL b.N times and reports the time from the kill to the next
// acknowledged write (a mint, whose audit record must commit) at a
// surviving node: p50 and max. The killed node is restarted on its data
// directory between trials. Run with -benchtime 10x for the 10 trials the
// failover target names.
func BenchmarkFailover(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "writ")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	dev := filepath.Join(dir, "dev")
	if err := prepareDevDir(dev, "127.0.0.1:0", "127.0.0.1:0", time.Now()); err != nil {
		b.Fatal(err)
	}
	type node struct {
		id, api, raft string
		cmd           *exec.Cmd
	}
	nodes := map[string]*node{}
	start := func(n *node, bootstrap bool) {
		args := []string{"server", "--config", filepath.Join(dev, "server.yaml"), "--node-id", n.id, "--listen", n.api,
			"--raft-listen", n.raft, "--data-dir", filepath.Join(dev, n.id)}
		if !bootstrap {
			args = append(args, "--no-bootstrap")
		}
		n.cmd = exec.Command(bin, args...)
		if err := n.cmd.Start(); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for _, n := range nodes {
			if n.cmd != nil {
				n.cmd.Process.Kill()
				n.cmd.Wait()
			}
		}
	})
	admin := []string{"--bundle", filepath.Join(dev, "ca", "ca.pem"), "--svid", filepath.Join(dev, "svids", "admin.pem"), "--svid-key", filepath.Join(dev, "svids", "admin-key.pem")}
	cli := func(timeout time.Duration, args ...string) (string, error) {
		deadline := time.Now().Add(timeout)
		for {
			out, err := exec.Command(bin, args...).Output()
			if err == nil || time.Now().After(deadline) {
				return string(out), err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i, id := range []string{"writ-1", "writ-2", "writ-3"} {
		n := &node{id: id, api: freeAddr(b), raft: freeAddr(b)}
		nodes[id] = n
		start(n, i == 0)
		if i > 0 {
			if _, err := cli(30*time.Second, append([]string{"cluster", "join", "--server", "https://" + nodes["writ-1"].api,
				"--node-id", id, "--raft-addr", n.raft, "--api-addr", n.api}, admin...)...); err != nil {
				b.Fatalf("join %s: %v", id, err)
			}
		}
	}
	mint := []string{"token", "mint", "--bundle", filepath.Join(dev, "ca", "ca.pem"), "--svid", filepath.Join(dev, "svids", "support.pem"),
		"--svid-key", filepath.Join(dev, "svids", "support-key.pem"), "--right", "crm/contacts:read"}
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var st issuer.ClusterStatus
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			out, err := cli(30*time.Second, append([]string{"cluster", "status", "--server", "https://" + nodes["writ-1"].api}, admin...)...)
			if err == nil && json.Unmarshal([]byte(out), &st) == nil && nodes[st.Leader] != nil && st.Voters == 3 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("status before trial %d: %v %s", i, err, out)
			}
		}
		dead := nodes[st.Leader]
		var alive *node
		for _, n := range nodes {
			if n != dead {
				alive = n
			}
		}
		dead.cmd.Process.Signal(syscall.SIGKILL)
		killed := time.Now()
		dead.cmd.Wait()
		if _, err := cli(30*time.Second, append(mint, "--server", "https://"+alive.api)...); err != nil {
			b.Fatalf("trial %d: no mint after the kill: %v", i, err)
		}
		times = append(times, time.Since(killed))
		b.StopTimer()
		start(dead, false) // back on its data directory, as a follower
		if _, err := cli(30*time.Second, append(mint, "--server", "https://"+dead.api)...); err != nil {
			b.Fatalf("trial %d: restarted %s does not serve: %v", i, dead.id, err)
		}
		b.StartTimer()
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "max-ms")
}
