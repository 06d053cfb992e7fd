package syncwire

// Limits of spec/sync.md §3. The decoder checks each one before it
// allocates for the value it bounds; the encoders refuse values outside
// them with ErrInvalid or ErrTooLarge.
const (
	// MaxBody bounds the body of any frame (the length field).
	MaxBody = 1 << 20
	// MaxChunkEntries bounds the entries of one snapshot_entries frame;
	// the body limit bounds them further (61,680 token or block entries).
	MaxChunkEntries = 65536
	// MaxKeys bounds a key list (at least one key).
	MaxKeys = 64
	// MaxNodes bounds a node list (possibly empty).
	MaxNodes = 16
	// MaxNodeLen bounds a node address ("host:port") and a heartbeat's
	// node name (at least one byte each).
	MaxNodeLen = 255
	// MaxAgentLen bounds the agent of an agent entry (at least one byte).
	MaxAgentLen = 2048
)

// Sizes of the fixed parts of the format.
const (
	headerSize   = 5      // type:u8 length:u32
	sigSize      = 4 + 64 // key_id:u32 signature[64]
	keySize      = 4 + 1 + 32 + 8
	idEntrySize  = 1 + 16        // a token or block entry
	minEntrySize = 1 + 8 + 2 + 1 // the smallest agent entry
	beginMin     = 8 + 8 + 1 + keySize + 1 + 4
	endBodySize  = 8 + 4 + 32 + sigSize
	changeMin    = 8 + 8 + 8 + 4 + 4 + 1 + 1 + sigSize
	heartbeatMin = 8 + 8 + 2 + 1 + sigSize
	// readStep is the most a Reader grows its buffer by before the bytes
	// to fill it have arrived.
	readStep = 64 << 10
)
