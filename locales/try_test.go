package locales
import ("testing";"time";"fmt";"github.com/checkinbot/checkinbot/dialogs")
func TestTry(t *testing.T){
 c,err:=Load(); if err!=nil{t.Fatal(err)}
 loc,_:=time.LoadLocation("Asia/Phnom_Penh")
 e:=&dialogs.Engine{Catalog:c,Policy:dialogs.DefaultPolicy(),Pepper:[]byte("0123456789012345678901234567890123"),Directory:dialogs.Directory{Embassies:[]dialogs.Embassy{{ID:"my-kh",Nationalities:[]string{"MY"},Countries:[]string{"KH"}}},Countries:[]dialogs.Country{{Code:"MY",Location:time.UTC},{Code:"KH",Location:loc}}}}
 st:=dialogs.State{}
 now:=time.Date(2026,3,2,9,0,0,0,time.UTC)
 for _,m:=range []string{"hi","1","1","1","1","Phnom Penh","Siti Aminah","skip","skip","skip","1","09:00","ok","blue mango","blue mango","1","ok","hello blue mango!","/stop","1","x","/mydata"}{
   r:=e.Handle(st,dialogs.Input{Kind:dialogs.KindText,Key:"k1",Text:m,Channel:"terminal",Address:"1"},now)
   st=r.State
   fmt.Printf("> %s\n",m)
   for _,rp:=range r.Replies{fmt.Printf("< %s %v\n",rp.Text,rp.Buttons)}
   for _,x:=range r.Escalations{fmt.Printf("EMBASSY <- %s %s\n",x.Type,x.Severity)}
 }
}
