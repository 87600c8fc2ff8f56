package metrics

import "errors"

func asError(err error, target any) bool { return err != nil && errors.As(err, target) }
