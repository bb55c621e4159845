package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"

	"github.com/checkinbot/checkinbot/store"
)

// The page-level check of a data file, done on the file's bytes with
// ReadAt instead of through bbolt's memory map. bbolt trusts its pages: a
// page id past the end of a truncated file is a SIGBUS, a damaged page
// header an index-out-of-range panic, and its own consistency check
// (Tx.Check) runs in a goroutine of its own where neither can be
// recovered. Reading the bytes ourselves, every fault is a bounds check
// that fails into a problem report; bbolt only touches a file that passed.
//
// The layout is bbolt's on-disk format version 2 (go.etcd.io/bbolt
// internal/common), in the machine's byte order as bbolt writes it:
//
//	page header (16 bytes): id u64, flags u16, count u16, overflow u32
//	meta (at 16):  magic u32, version u32, page size u32, flags u32,
//	               root bucket {root pgid u64, sequence u64}, freelist pgid u64,
//	               high-water pgid u64, txid u64, checksum u64 (FNV-1a 64 of the 56 bytes before it)
//	branch element (16 bytes): pos u32, ksize u32, child pgid u64
//	leaf element (16 bytes):   flags u32 (1 = nested bucket), pos u32, ksize u32, vsize u32
//	nested bucket value: root pgid u64, sequence u64, then an inline leaf page when root is 0
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	elementSize      = 16
	metaSize         = 64 // meta struct including its checksum
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	noFreelist       = ^uint64(0)
	maxTreeDepth     = 64  // far deeper than any real file: a cycle guard
	maxPageProblems  = 100 // a shredded file is reported, not listed page by page
)

var ne = binary.NativeEndian

// rawMeta is one meta page as read from the file.
type rawMeta struct {
	page                           int
	magic, version, pageSize       uint32
	root, freelist, hwm, txid, sum uint64
	err                            error // why bbolt would not use it; nil when valid
}

// header is what the two meta pages say about the file.
type header struct {
	size     int64
	pageSize int
	meta     rawMeta // the meta page in force (the valid one with the higher txid)
}

var (
	errMetaMagic    = errors.New("no bbolt header")
	errMetaVersion  = errors.New("unknown bbolt format version")
	errMetaChecksum = errors.New("checksum mismatch")
	errMetaShort    = errors.New("cut off")
)

func parseMeta(b []byte, page int) rawMeta {
	m := rawMeta{page: page}
	if len(b) < pageHeaderSize+metaSize {
		if len(b) >= pageHeaderSize+4 {
			m.magic = ne.Uint32(b[pageHeaderSize:])
		}
		m.err = errMetaShort
		return m
	}
	d := b[pageHeaderSize:]
	m.magic, m.version, m.pageSize = ne.Uint32(d[0:]), ne.Uint32(d[4:]), ne.Uint32(d[8:])
	m.root, m.freelist, m.hwm, m.txid, m.sum = ne.Uint64(d[16:]), ne.Uint64(d[32:]), ne.Uint64(d[40:]), ne.Uint64(d[48:]), ne.Uint64(d[56:])
	h := fnv.New64a()
	h.Write(d[:56])
	switch {
	case m.magic != boltMagic:
		m.err = errMetaMagic
	case m.version != boltVersion:
		m.err = errMetaVersion
	case m.sum != h.Sum64():
		m.err = errMetaChecksum
	}
	return m
}

// readHeader reads and judges the meta pages: an empty file, a file that
// is not bbolt's, a cut-off file and damaged meta pages are told apart.
// Returned errors are *FileError without Path.
func readHeader(f io.ReaderAt, size int64) (header, error) {
	h := header{size: size}
	if size == 0 {
		return h, &store.FileError{Kind: store.ErrEmpty, Reason: "refusing to use it, which would start over without every " +
			"registration and undelivered escalation; restore the file from a backup, or delete it if this is a new installation"}
	}
	first := make([]byte, pageHeaderSize+metaSize)
	n, _ := f.ReadAt(first, 0)
	m0 := parseMeta(first[:n], 0)
	ps := int(m0.pageSize)
	if m0.err != nil || !sanePageSize(ps) {
		// Page 0 is damaged: find page 1 where bbolt would look for it.
		ps = 0
		for i := 0; i <= 14; i++ {
			off := int64(1024) << i
			if off >= size {
				break
			}
			buf := make([]byte, pageHeaderSize+metaSize)
			n, _ := f.ReadAt(buf, off)
			if m := parseMeta(buf[:n], 1); m.magic == boltMagic && int64(m.pageSize) == off {
				ps = int(off)
				break
			}
		}
	}
	if ps == 0 {
		if m0.magic == boltMagic && m0.err == errMetaShort {
			return h, &store.FileError{Kind: store.ErrTruncated, Reason: fmt.Sprintf("only %d bytes are left of it; restore the file from a backup", size)}
		}
		if m0.magic == boltMagic {
			return h, &store.FileError{Kind: store.ErrCorrupt, Reason: "both meta pages are damaged (page 0: " + m0.err.Error() + ", page 1 not found)"}
		}
		return h, &store.FileError{Kind: store.ErrForeign, Reason: fmt.Sprintf("not a bbolt database (%d bytes without a bbolt header): "+
			"another program's file, or one damaged beyond recognition (corrupt)", size)}
	}
	h.pageSize = ps
	if size < int64(2*ps) {
		return h, &store.FileError{Kind: store.ErrTruncated, Reason: fmt.Sprintf("%d bytes, shorter than its two %d-byte meta pages; "+
			"restore the file from a backup", size, ps)}
	}
	second := make([]byte, pageHeaderSize+metaSize)
	n, _ = f.ReadAt(second, int64(ps))
	m1 := parseMeta(second[:n], 1)
	for _, m := range []*rawMeta{&m0, &m1} {
		if m.err == nil && int(m.pageSize) != ps {
			m.err = fmt.Errorf("page size %d, not %d", m.pageSize, ps)
		}
	}
	switch {
	case m0.err != nil && m1.err != nil:
		if m0.magic != boltMagic && m1.magic != boltMagic {
			return h, &store.FileError{Kind: store.ErrForeign, Reason: "not a bbolt database (no valid meta page): another program's file, or corrupt"}
		}
		return h, &store.FileError{Kind: store.ErrCorrupt, Reason: fmt.Sprintf("both meta pages are damaged (page 0: %v; page 1: %v)", m0.err, m1.err)}
	case m0.err == nil && m1.err == nil:
		h.meta = m0
		if m1.txid > m0.txid {
			h.meta = m1
		}
	default:
		good, bad := m0, m1
		if m0.err != nil {
			good, bad = m1, m0
		}
		// bbolt would fall back to the valid meta page. That loses
		// nothing only when the damaged one is the older commit record
		// (the next commit rewrites it). When it is the newer one, the
		// fallback silently undoes the last committed transaction — an
		// escalation, perhaps — so it is refused; a meta page whose
		// transaction number itself is damaged cannot be told apart.
		if bad.txid+1 != good.txid {
			return h, &store.FileError{Kind: store.ErrCorrupt, Reason: fmt.Sprintf("meta page %d is damaged (%v) and may hold the last commit: "+
				"using the other one would silently undo it; restore the file from a backup", bad.page, bad.err)}
		}
		h.meta = good
	}
	m := h.meta
	switch {
	case m.hwm < 2 || m.hwm > uint64(1)<<48:
		return h, &store.FileError{Kind: store.ErrCorrupt, Reason: fmt.Sprintf("meta page %d: impossible page count %d", m.page, m.hwm)}
	case int64(m.hwm)*int64(ps) > size:
		return h, &store.FileError{Kind: store.ErrTruncated, Reason: fmt.Sprintf("%d bytes, but its last commit uses %d pages of %d bytes (%d bytes): "+
			"the end of the file is missing; restore the file from a backup", size, m.hwm, ps, int64(m.hwm)*int64(ps))}
	case m.root < 2 || m.root >= m.hwm:
		return h, &store.FileError{Kind: store.ErrCorrupt, Reason: fmt.Sprintf("meta page %d: root page %d out of range", m.page, m.root)}
	case m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.hwm):
		return h, &store.FileError{Kind: store.ErrCorrupt, Reason: fmt.Sprintf("meta page %d: freelist page %d out of range", m.page, m.freelist)}
	}
	return h, nil
}

func sanePageSize(ps int) bool { return ps >= 512 && ps <= 1<<24 && ps&(ps-1) == 0 }

// walker checks every page reachable from the root bucket and the
// freelist: ids in range, headers naming their own id, known page types,
// element tables and keys inside their page, keys in order within their
// parent's bounds, no page used twice or both used and free, and every
// page below the high-water mark either used or free.
type walker struct {
	r     io.ReaderAt
	h     header
	used  []bool
	freed []bool
	probs []string
}

// walkPages returns the page-level problems of the file, by page number only.
func walkPages(r io.ReaderAt, h header) []string {
	w := &walker{r: r, h: h, used: make([]bool, h.meta.hwm), freed: make([]bool, h.meta.hwm)}
	w.used[0], w.used[1] = true, true
	if h.meta.freelist != noFreelist {
		w.freelist(h.meta.freelist)
	}
	w.tree(h.meta.root, nil, nil, 0)
	if h.meta.freelist != noFreelist && len(w.probs) == 0 {
		for id := range w.used {
			if !w.used[id] && !w.freed[id] {
				w.problem("page %d is neither in use nor free", id)
			}
		}
	}
	return w.probs
}

func (w *walker) problem(format string, args ...any) {
	if len(w.probs) < maxPageProblems {
		w.probs = append(w.probs, fmt.Sprintf(format, args...))
	} else if len(w.probs) == maxPageProblems {
		w.probs = append(w.probs, "more page problems not listed")
	}
}

// page reads page id with its overflow pages, or reports why it cannot.
func (w *walker) page(id uint64, ref string) []byte {
	hwm := w.h.meta.hwm
	if id < 2 || id >= hwm {
		w.problem("page %d (%s) is out of range [2, %d)", id, ref, hwm)
		return nil
	}
	ps := int64(w.h.pageSize)
	head := make([]byte, pageHeaderSize)
	if _, err := w.r.ReadAt(head, int64(id)*ps); err != nil {
		w.problem("page %d cannot be read: %v", id, err)
		return nil
	}
	if got := ne.Uint64(head); got != id {
		w.problem("page %d (%s) names itself page %d", id, ref, got)
		return nil
	}
	overflow := uint64(ne.Uint32(head[12:]))
	if id+overflow >= hwm {
		w.problem("page %d runs past the last page (%d overflow pages)", id, overflow)
		return nil
	}
	for i := id; i <= id+overflow; i++ {
		if w.used[i] {
			w.problem("page %d is used twice (again by %s)", i, ref)
			return nil
		}
		if w.freed[i] {
			w.problem("page %d is both in use and free", i)
		}
		w.used[i] = true
	}
	buf := make([]byte, (int64(overflow)+1)*ps)
	if _, err := w.r.ReadAt(buf, int64(id)*ps); err != nil {
		w.problem("page %d cannot be read: %v", id, err)
		return nil
	}
	return buf
}

func (w *walker) freelist(id uint64) {
	p := w.page(id, "freelist")
	if p == nil {
		return
	}
	if f := ne.Uint16(p[8:]); f != freelistPageFlag {
		w.problem("page %d should be the freelist but has type %#x", id, f)
		return
	}
	n, start := uint64(ne.Uint16(p[10:])), uint64(pageHeaderSize)
	if n == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			w.problem("freelist page %d is cut off", id)
			return
		}
		n, start = ne.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > uint64(len(p)) || start+n*8 > uint64(len(p)) {
		w.problem("freelist page %d lists %d pages, more than it can hold", id, n)
		return
	}
	for i := uint64(0); i < n; i++ {
		f := ne.Uint64(p[start+i*8:])
		switch {
		case f < 2 || f >= w.h.meta.hwm:
			w.problem("freelist page %d lists page %d, out of range", id, f)
		case w.freed[f]:
			w.problem("page %d is freed twice", f)
		default:
			w.freed[f] = true
		}
	}
}

// tree checks the page id and everything below it; keys must lie in
// [lo, hi) (nil: unbounded). It returns the subtree's last key.
func (w *walker) tree(id uint64, lo, hi []byte, depth int) []byte {
	if depth > maxTreeDepth {
		w.problem("page %d is nested deeper than %d levels (a cycle?)", id, maxTreeDepth)
		return nil
	}
	p := w.page(id, "tree")
	if p == nil {
		return nil
	}
	return w.elements(p, id, lo, hi, depth)
}

// elements checks the elements of page p (a page of the file, or an
// inline bucket's page inside a value when id is 0).
func (w *walker) elements(p []byte, id uint64, lo, hi []byte, depth int) []byte {
	where := fmt.Sprintf("page %d", id)
	if id == 0 {
		where = "an inline bucket"
	}
	if len(p) < pageHeaderSize {
		w.problem("%s is cut off", where)
		return nil
	}
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if flags != branchPageFlag && flags != leafPageFlag || id == 0 && flags != leafPageFlag {
		w.problem("%s has type %#x where a branch or leaf page belongs", where, flags)
		return nil
	}
	if pageHeaderSize+count*elementSize > len(p) {
		w.problem("%s claims %d elements, more than it can hold", where, count)
		return nil
	}
	var prev []byte
	for i := 0; i < count; i++ {
		e := pageHeaderSize + i*elementSize
		var pos, ksize, vsize int
		if flags == branchPageFlag {
			pos, ksize = int(ne.Uint32(p[e:])), int(ne.Uint32(p[e+4:]))
		} else {
			pos, ksize, vsize = int(ne.Uint32(p[e+4:])), int(ne.Uint32(p[e+8:])), int(ne.Uint32(p[e+12:]))
		}
		start := e + pos
		if start+ksize+vsize > len(p) {
			w.problem("%s: element %d points outside the page", where, i)
			return prev
		}
		key := p[start : start+ksize]
		if ksize == 0 {
			w.problem("%s: element %d has an empty key", where, i)
		}
		switch {
		case prev != nil && bytes.Compare(prev, key) >= 0:
			w.problem("%s: element %d is out of key order", where, i)
		case prev == nil && lo != nil && bytes.Compare(key, lo) < 0:
			w.problem("%s: element %d sorts before its parent's bound", where, i)
		case hi != nil && bytes.Compare(key, hi) >= 0:
			w.problem("%s: element %d sorts after its parent's bound", where, i)
		}
		if flags == branchPageFlag {
			child := ne.Uint64(p[e+8:])
			next := hi
			if i+1 < count {
				nx := pageHeaderSize + (i+1)*elementSize
				np, nk := int(ne32(p, nx)), int(ne32(p, nx+4))
				if nx+np+nk <= len(p) {
					next = p[nx+np : nx+np+nk]
				}
			}
			w.tree(child, key, next, depth+1)
			prev = key
			continue
		}
		if ne.Uint32(p[e:])&bucketLeafFlag != 0 {
			w.bucket(p[start+ksize:start+ksize+vsize], where, i, depth)
		}
		prev = key
	}
	return prev
}

func ne32(p []byte, off int) uint32 {
	if off < 0 || off+4 > len(p) {
		return 0
	}
	return ne.Uint32(p[off:])
}

// bucket checks a nested bucket from its value in the parent leaf.
func (w *walker) bucket(v []byte, where string, i, depth int) {
	if len(v) < 16 {
		w.problem("%s: element %d is a bucket with a cut-off header", where, i)
		return
	}
	if root := ne.Uint64(v); root != 0 {
		w.tree(root, nil, nil, depth+1)
		return
	}
	if depth > maxTreeDepth {
		w.problem("%s: buckets nested deeper than %d levels", where, maxTreeDepth)
		return
	}
	w.elements(v[16:], 0, nil, nil, depth+1)
}
