package session

import (
	"encoding/binary"
	"testing"
)

func TestDecodePayloadRejects(t *testing.T) {
	good := payload{id: [idLen]byte{1}, issued: 1, expires: 2, active: 1, entries: []entry{{"a", 1}, {"b", "x"}}}
	enc, err := appendPayload(nil, &good)
	if err != nil {
		t.Fatal(err)
	}
	var p payload
	if err := decodePayload(enc, &p); err != nil {
		t.Fatalf("good payload rejected: %v", err)
	}
	// header builds a payload prefix with n entries to follow.
	header := func(n uint64) []byte {
		b := append([]byte{payloadVersion}, make([]byte, idLen)...)
		b = binary.AppendVarint(b, 1)
		b = binary.AppendVarint(b, 2)
		b = binary.AppendVarint(b, 1)
		return binary.AppendUvarint(b, n)
	}
	entry := func(b []byte, key string, tag byte, val ...byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
		return append(append(b, tag), val...)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wrong version", append([]byte{payloadVersion + 1}, enc[1:]...)},
		{"trailing byte", append(append([]byte{}, enc...), 0)},
		{"truncated", enc[:len(enc)-1]},
		{"duplicate key", entry(entry(header(2), "a", tagTrue), "a", tagTrue)},
		{"unsorted keys", entry(entry(header(2), "b", tagTrue), "a", tagTrue)},
		{"unknown tag", entry(header(1), "a", 0xee)},
		{"huge count", header(1 << 40)},
		{"int8 out of range", entry(header(1), "a", tagInt8, binary.AppendVarint(nil, 300)...)},
		{"uint16 out of range", entry(header(1), "a", tagUint16, binary.AppendUvarint(nil, 1<<20)...)},
		{"bad json", entry(header(1), "a", tagJSON, 3, '{', '{', '{')},
		{"string past end", entry(header(1), "a", tagString, 9, 'x')},
		{"nanoseconds too big", entry(header(1), "a", tagTime, append(append(binary.AppendVarint(nil, 0), binary.AppendUvarint(nil, 2e9)...), 0)...)},
		{"zone offset too big", entry(header(1), "a", tagTime, append([]byte{0, 0}, binary.AppendVarint(nil, 100*3600)...)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p payload
			if err := decodePayload(tt.b, &p); err == nil {
				t.Errorf("accepted %x", tt.b)
			}
		})
	}
}
