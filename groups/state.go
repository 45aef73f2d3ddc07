package groups

// State is a group's state, as Kafka names them.
type State string

// Kafka's group states.
const (
	// Empty: no members; offsets may still be stored.
	Empty State = "Empty"
	// PreparingRebalance: waiting for members to (re)join.
	PreparingRebalance State = "PreparingRebalance"
	// CompletingRebalance: joined; waiting for the leader's assignment.
	CompletingRebalance State = "CompletingRebalance"
	// Stable: every member has its assignment and heartbeats.
	Stable State = "Stable"
	// Dead: the group was deleted.
	Dead State = "Dead"
)

// Protocol is one assignor a member supports, with its metadata for it.
type Protocol struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata"`
}
