package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/writ-dev/writ/issuer"
	"github.com/writ-dev/writ/spec"
)

// runCluster serves `writ cluster status|join|remove|step-down`: the admin
// API's membership endpoints. Changes sent to a follower are retried once
// at the leader it names.
func runCluster(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("cluster: want one of: status, join, remove, step-down")
	}
	sub, args := args[0], args[1:]
	fs := newFlags(e, "cluster "+sub, "writ cluster "+sub+" [flags] --server URL --bundle FILE --svid CERT --svid-key KEY")
	cf := addClientFlags(fs)
	var nodeID, raftAddr, apiAddr *string
	switch sub {
	case "join":
		nodeID = fs.String("node-id", "", "id of the node to add (its node_id)")
		raftAddr = fs.String("raft-addr", "", "its raft address host:port")
		apiAddr = fs.String("api-addr", "", "its API address host:port")
	case "remove":
		nodeID = fs.String("node-id", "", "id of the node to remove")
	case "status", "step-down":
	default:
		return usagef("cluster: unknown subcommand %q (want status, join, remove, step-down)", sub)
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("cluster %s: unexpected argument %q", sub, pos[0])
	}
	var body []byte
	method, path := http.MethodPost, "/v1/admin/cluster/"+sub
	switch sub {
	case "status":
		method, path = http.MethodGet, "/v1/admin/cluster"
	case "join":
		if *nodeID == "" || *raftAddr == "" || *apiAddr == "" {
			return usagef("cluster join: --node-id, --raft-addr and --api-addr are required")
		}
		body, _ = json.Marshal(issuer.JoinRequest{NodeID: *nodeID, RaftAddr: *raftAddr, APIAddr: *apiAddr})
	case "remove":
		if *nodeID == "" {
			return usagef("cluster remove: --node-id is required")
		}
		body, _ = json.Marshal(issuer.RemoveRequest{NodeID: *nodeID})
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	server := strings.TrimRight(*cf.server, "/")
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, server+path, bytes.NewReader(body))
		if err != nil {
			return usagef("--server: %v", err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		rb, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode/100 == 2 {
			_, err = e.stdout.Write(rb)
			return err
		}
		var p issuer.Problem
		if json.Unmarshal(rb, &p) == nil && p.Type == spec.ProblemType(issuer.ProblemNotLeader) && p.Leader != "" && attempt == 0 {
			fmt.Fprintf(e.stderr, "writ: %s is not the leader; retrying at %s\n", server, p.Leader)
			server = "https://" + p.Leader
			continue
		}
		e.stderr.Write(rb)
		return fmt.Errorf("cluster %s: issuer answered %s", sub, resp.Status)
	}
}
