package main

import (
	"context"
	"encoding/json"
	"fmt"
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
		rb, status, err := adminRequest(ctx, client, server, method, path, body, 4<<20)
		if err != nil {
			return err
		}
		if status/100 == 2 {
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
		return fmt.Errorf("cluster %s: issuer answered %d %s", sub, status, http.StatusText(status))
	}
}
