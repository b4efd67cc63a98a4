package infer

import (
	"unicode"
	"unicode/utf8"
)

// The scanner reads text once, byte by byte, and reports every word and
// phrase of a vocabulary it sees. Words are runs of letters and digits,
// lower-cased; an apostrophe or a hyphen inside a word is dropped ("don't"
// reads as "dont", "re-install" as "reinstall") and a dot between two
// alphanumerics is kept ("10.0.0.1", "outlook.exe"). A phrase is matched
// when its last word is read, against a ring of the words before it, so a
// scan allocates nothing and its cost is linear in the text whatever the
// vocabulary.

const (
	maxWord   = 40   // longer words are read but never match
	maxPhrase = 6    // words in the longest phrase
	maxText   = 8192 // bytes of one text that are read
)

// vocab is a compiled vocabulary: entries by their single word or by the
// last word of their phrase.
type vocab struct {
	entries []entry
	words   map[string]int32   // one-word entry → index
	ends    map[string][]int32 // last word of a phrase → phrase entries
}

// entry is one vocabulary item and what it says about the two axes.
type entry struct {
	words      []string // normalised, in order
	competence float64
	attitude   float64
	group      uint8 // index of its signal in signals
}

// seen is a set of entry indexes: each entry counts once per text.
type seen [16]uint64 // up to 1024 entries

func (s *seen) add(i int32) bool {
	w, b := i/64, uint64(1)<<(i%64)
	if s[w]&b != 0 {
		return false
	}
	s[w] |= b
	return true
}

type ring struct {
	buf [maxPhrase][maxWord]byte
	n   [maxPhrase]uint8
	pos int // next slot
	len int // words held
}

func (r *ring) push(w []byte) {
	r.n[r.pos] = uint8(copy(r.buf[r.pos][:], w))
	r.pos = (r.pos + 1) % maxPhrase
	if r.len < maxPhrase {
		r.len++
	}
}

// back returns the word k places before the newest (k = 0 is the newest).
func (r *ring) back(k int) []byte {
	i := (r.pos - 1 - k + 2*maxPhrase) % maxPhrase
	return r.buf[i][:r.n[i]]
}

// shape says what a word looks like beyond its letters.
type shape uint8

const (
	shapeCode    shape = 1 << iota // letters and digits mixed: 0x800f0922, aadsts50076, se16n
	shapeDotted                    // digits with two or more dots: 10.0.0.1, 16.0.17328
	shapeAcronym                   // all upper-case in the text, 2–6 letters: DNS, TPM
)

// scan calls hit for each vocabulary entry found in text and not yet in
// once, and shapes for each word with a notable shape. A phrase does not
// span two calls.
func (v *vocab) scan(text string, once *seen, hit func(e *entry), shapes func(shape)) {
	var r ring
	words(text, func(w []byte, sh shape) {
		if sh != 0 {
			shapes(sh)
		}
		r.push(w)
		if w == nil {
			return
		}
		if i, ok := v.words[string(w)]; ok && once.add(i) {
			hit(&v.entries[i])
		}
		for _, i := range v.ends[string(w)] {
			e := &v.entries[i]
			if len(e.words) > r.len {
				continue
			}
			match := true
			for k := 1; k < len(e.words) && match; k++ {
				match = string(r.back(k)) == e.words[len(e.words)-1-k]
			}
			if match && once.add(i) {
				hit(e)
			}
		}
	})
}

// words calls fn for each word of text (at most maxText bytes of it),
// lower-cased, with its shape; a word longer than maxWord is passed as nil.
// w is valid only during the call.
func words(text string, fn func(w []byte, sh shape)) {
	if len(text) > maxText {
		text = text[:maxText]
	}
	var (
		word  [maxWord]byte
		n     int  // bytes in word
		long  bool // word exceeded maxWord
		upper int  // upper-case letters in the word
		digit bool
		alpha bool
		dots  int
	)
	flush := func() {
		switch {
		case long:
			fn(nil, 0)
		case n > 0:
			var sh shape
			switch {
			case digit && alpha && n >= 4:
				sh = shapeCode
			case digit && !alpha && dots >= 2:
				sh = shapeDotted
			case !digit && upper == n && n >= 2 && n <= 6:
				sh = shapeAcronym
			}
			fn(word[:n], sh)
		}
		n, long, upper, digit, alpha, dots = 0, false, 0, false, false, 0
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(text[i:])
			switch {
			case r == '’' && n > 0 && i+size < len(text) && isAlnum(text[i+size]):
				// an apostrophe inside a word: dropped
			case unicode.IsLetter(r) || unicode.IsDigit(r):
				if n+size <= maxWord {
					n += copy(word[n:], text[i:i+size])
				} else {
					long = true
				}
			default:
				flush()
			}
			i += size - 1
			continue
		}
		switch {
		case c >= 'a' && c <= 'z':
			alpha = true
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
			alpha = true
			upper++
		case c >= '0' && c <= '9':
			digit = true
		case (c == '\'' || c == '-') && n > 0 && i+1 < len(text) && isAlnum(text[i+1]):
			continue // inside a word: dropped
		case c == '.' && n > 0 && i+1 < len(text) && isAlnum(text[i+1]):
			dots++
		default:
			flush()
			continue
		}
		if n < maxWord {
			word[n] = c
			n++
		} else {
			long = true
		}
	}
	flush()
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
