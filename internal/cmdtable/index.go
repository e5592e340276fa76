package cmdtable

func init() {
	for i := range Commands {
		Commands[i].Index = i
	}
}
