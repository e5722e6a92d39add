// Command etcd is the etcd server of the pinned release, with etcd's own flags.
// It runs as its own process so that the API server can restart while the data stays.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
