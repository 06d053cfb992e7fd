// Package clustertest provides test scaffolding for code built on package
// cluster: a throwaway SPIFFE certificate authority that issues node
// X.509-SVIDs and go-spiffe mTLS configs, and a helper that runs a
// single-voter cluster.Node on a temporary directory.
//
// It is for tests only: keys are generated in memory, certificates are
// short-lived, and failures call t.Fatal.
//
//	ca := clustertest.NewCA(t, "writ.test")
//	node := clustertest.StartNode(t, ca, "n1", myFSM, nil)
//	v, err := node.Apply(ctx, cmd)
package clustertest
