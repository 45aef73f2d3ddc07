package partitioner_test

import (
	"fmt"

	"github.com/qxd-io/qxd/partitioner"
)

func ExampleKafkaPartition() {
	for _, key := range []string{"21", "foobar", "user-1"} {
		fmt.Printf("%s: partition %d of 8\n", key, partitioner.KafkaPartition([]byte(key), 8))
	}
	// Output:
	// 21: partition 4 of 8
	// foobar: partition 6 of 8
	// user-1: partition 4 of 8
}

func ExampleNATS() {
	// Under the mapping orders.* → orders.{{partition(10,1)}}.{{wildcard(1)}},
	// nats-server maps orders.foo to orders.3.foo.
	fmt.Println(partitioner.NewNATS().Partition([]byte("foo"), 10))
	// Output: 3
}
